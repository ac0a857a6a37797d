/**
 * Measurement 2 of the pipeline benchmark, throughput: after a warm-up of 200 submissions over HTTP
 * through the whole pipeline, --count signed submissions go straight to hashes.submitted.v1 as fast
 * as one producer can, and the clock runs until both partner databases hold every row they are
 * entitled to. Each stage's progress is sampled every 200 ms to say when it finished.
 */
import type { Message } from "kafkajs";
import { loadavg } from "node:os";
import type { IngestClient } from "../../services/force-cli/client.ts";
import type { Pool } from "../../services/shared/postgres.ts";
import { WARMUP } from "./context.ts";
import type { Bench } from "./context.ts";
import { cpuDelta } from "./proc.ts";
import type { CpuDelta, CpuSnapshot } from "./proc.ts";
import type { Probes } from "./services.ts";
import type { Setup } from "./setup.ts";
import { fmt, log, waitUntil } from "./util.ts";
import { BATCH, sum } from "./workload.ts";
import type { Item } from "./workload.ts";

/** Sends the warm-up over HTTP and waits until it has reached both partners and the pipeline has settled. */
export async function warmUp(client: IngestClient, probes: Probes, warmItems: readonly Item[]): Promise<void> {
  const { partnerRows, settled, diagnose } = probes;
  log(`  warm-up: ${WARMUP} submissions over HTTP through the whole pipeline...`);
  for (let i = 0; i < warmItems.length; i += 100) {
    const res = await client.submit(warmItems.slice(i, i + 100).map((w) => w.sub));
    if (res.receipt.accepted !== Math.min(100, warmItems.length - i))
      throw new Error(`warm-up: status ${res.status}, receipt ${JSON.stringify(res.receipt)}`);
  }
  const expectWarm = { hotline: sum(warmItems, (i) => i.hotlineRows), industry: sum(warmItems, (i) => i.industryRows) };
  await waitUntil(
    "the warm-up to reach both partner databases",
    async () => {
      const r = await partnerRows();
      return r.hotline >= expectWarm.hotline && r.industry >= expectWarm.industry;
    },
    150_000,
    300,
    diagnose,
  );
  await waitUntil("the pipeline to settle after the warm-up", settled, 60_000, 300, diagnose);
}

/** Progress of each stage since the bulk's first publish. */
export interface Sample {
  t: number;
  dedupApplied: number;
  canonicalOnKafka: number;
  distributed: number;
  feedOnKafka: number;
  hotlineRows: number;
  industryRows: number;
}

export interface BulkResult {
  /** Counts before the bulk (the warm-up's). */
  base: { applied: number; distributed: number; canonical: number; feed: number; hotline: number; industry: number };
  expectBulk: { hotline: number; industry: number };
  expectBulkFeed: number;
  /** When the first publish started (epoch ms). */
  t2: number;
  publishSeconds: number;
  samples: Sample[];
  /** Seconds after t2 at which each stage had handled the whole bulk. */
  finish: Partial<Record<keyof Omit<Sample, "t">, number>>;
  settledAt2: number;
  e2eSeconds: number;
  lastRowAt: number;
  lastDedupAt: number;
  feedRecords2: number;
  cpu2: CpuDelta;
  load2a: number[];
  load2b: number[];
}

type Stage = keyof Omit<Sample, "t">;

export async function bulkPhase(
  b: Bench,
  setup: Setup,
  probes: Probes,
  cpuSnapshot: () => Promise<CpuSnapshot>,
  bulkItems: readonly Item[],
  bulkMessages: readonly Message[],
): Promise<BulkResult> {
  const { args, producer } = b;
  const { names } = setup;
  log(`  2. pipeline: ${fmt(args.count)} submissions straight to ${names.submitted}, until both partner databases hold everything...`);
  const base = await countsBefore(setup, probes);
  const expectBulk = { hotline: sum(bulkItems, (i) => i.hotlineRows), industry: sum(bulkItems, (i) => i.industryRows) };
  const expectBulkFeed = expectBulk.hotline + expectBulk.industry;
  const cpu2a = await cpuSnapshot();
  const load2a = loadavg();
  const t2 = Date.now();
  for (let i = 0; i < bulkMessages.length; i += BATCH)
    await producer.send({ topic: names.submitted, acks: -1, messages: bulkMessages.slice(i, i + BATCH) });
  const publishSeconds = (Date.now() - t2) / 1000;
  const targets: Record<Stage, number> = {
    dedupApplied: args.count,
    canonicalOnKafka: args.count,
    distributed: args.count,
    feedOnKafka: expectBulkFeed,
    hotlineRows: expectBulk.hotline,
    industryRows: expectBulk.industry,
  };
  const { samples, finish, settledAt2 } = await sampleUntilDelivered(setup, probes, base, targets, t2);
  const cpu2b = await cpuSnapshot();
  const load2b = loadavg();
  const e2eSeconds = (settledAt2 - t2) / 1000;
  const { lastRowAt, lastDedupAt } = await lastWrites(setup);
  await waitUntil("the pipeline to settle after the bulk", probes.settled, 60_000, 300, probes.diagnose);
  const feedRecords2 = (await feedHighSum(setup, probes)) - base.feed;
  const cpu2 = cpuDelta(cpu2a, cpu2b);
  log(
    `     ${fmt(args.count / e2eSeconds)} submissions/s end to end (${e2eSeconds.toFixed(1)} s), ${fmt(feedRecords2 / e2eSeconds)} feed records/s`,
  );
  return {
    base,
    expectBulk,
    expectBulkFeed,
    t2,
    publishSeconds,
    samples,
    finish,
    settledAt2,
    e2eSeconds,
    lastRowAt,
    lastDedupAt,
    feedRecords2,
    cpu2,
    load2a,
    load2b,
  };
}

/** The records on both feed topics (the sum of their high watermarks). */
async function feedHighSum(setup: Setup, probes: Probes): Promise<number> {
  const { feedTopics } = setup;
  return (await probes.highSum(feedTopics[0] as string)) + (await probes.highSum(feedTopics[1] as string));
}

/** Every stage's count before the bulk, so the samples count the bulk alone. */
async function countsBefore(setup: Setup, probes: Probes): Promise<BulkResult["base"]> {
  return {
    ...(await probes.hubCounts()),
    canonical: await probes.highSum(setup.names.canonical),
    feed: await feedHighSum(setup, probes),
    ...(await probes.partnerRows()),
  };
}

/**
 * Samples every stage every 200 ms until both partner databases hold the bulk; `finish` records when
 * each stage first reached its target, in seconds after t2.
 */
async function sampleUntilDelivered(
  setup: Setup,
  probes: Probes,
  base: BulkResult["base"],
  targets: Record<Stage, number>,
  t2: number,
): Promise<{ samples: Sample[]; finish: BulkResult["finish"]; settledAt2: number }> {
  const { names } = setup;
  const { partnerRows, highSum, hubCounts, diagnose } = probes;
  const samples: Sample[] = [];
  const finish: Partial<Record<Stage, number>> = {};
  const settledAt2 = await waitUntil(
    "both partner databases to hold the bulk submissions",
    async () => {
      const h = await hubCounts();
      const r = await partnerRows();
      const s: Sample = {
        t: (Date.now() - t2) / 1000,
        dedupApplied: h.applied - base.applied,
        canonicalOnKafka: (await highSum(names.canonical)) - base.canonical,
        distributed: h.distributed - base.distributed,
        feedOnKafka: (await feedHighSum(setup, probes)) - base.feed,
        hotlineRows: r.hotline - base.hotline,
        industryRows: r.industry - base.industry,
      };
      samples.push(s);
      for (const k of Object.keys(targets) as Stage[]) if (finish[k] === undefined && s[k] >= targets[k]) finish[k] = s.t;
      return s.hotlineRows >= targets.hotlineRows && s.industryRows >= targets.industryRows;
    },
    240_000,
    200,
    diagnose,
  );
  return { samples, finish, settledAt2 };
}

/** When the last partner row and the last dedup transaction were written (epoch ms, PostgreSQL clock). */
async function lastWrites(setup: Setup): Promise<{ lastRowAt: number; lastDedupAt: number }> {
  const { hubDb, partnerDbs } = setup;
  const epochMax = async (pool: Pool, sql: string) => Number((await pool.query<{ t: number }>(sql)).rows[0]?.t ?? NaN);
  const lastRowAt = Math.max(
    await epochMax(partnerDbs.hotline.pool, "SELECT (extract(epoch FROM max(updated_at)) * 1000)::float8 AS t FROM partner_hashes"),
    await epochMax(partnerDbs.industry.pool, "SELECT (extract(epoch FROM max(updated_at)) * 1000)::float8 AS t FROM partner_hashes"),
  );
  const lastDedupAt = await epochMax(
    hubDb.pool,
    "SELECT (extract(epoch FROM max(applied_at)) * 1000)::float8 AS t FROM applied_submissions",
  );
  return { lastRowAt, lastDedupAt };
}
