/**
 * Measurement 3 of the pipeline benchmark, latency: --rate submissions/s for --seconds through
 * POST /v1/submissions of the ingest process, open loop (requests do not wait for earlier answers,
 * at most 64 in flight), each submission's send time kept. Afterwards the timestamps the pipeline
 * keeps anyway are read back per submission: ingest's answer, dedup's applied_at, the Kafka
 * timestamps of the canonical and feed records, the feed record's issuedAt, the partner row's
 * updated_at (PostgreSQL clock, same machine).
 */
import type { KafkaMessage } from "kafkajs";
import { loadavg } from "node:os";
import type { IngestClient } from "../../services/force-cli/client.ts";
import { uniqueName } from "../../test/support/stack.ts";
import type { Bench } from "./context.ts";
import type { BulkResult } from "./bulk.ts";
import { cpuDelta } from "./proc.ts";
import type { CpuDelta, CpuSnapshot } from "./proc.ts";
import type { Probes } from "./services.ts";
import type { Setup } from "./setup.ts";
import { log, waitUntil } from "./util.ts";
import { steadyLoad, sum } from "./workload.ts";
import type { Item, SteadyResult } from "./workload.ts";

export interface SteadyPhaseResult {
  /** Per steady submission: when its request was sent, and when ingest answered (epoch ms). */
  sentAt: Float64Array;
  ackAt: Float64Array;
  /** When the steady phase started (epoch ms). */
  t3: number;
  steady: SteadyResult;
  /** Rows each partner holds once the steady submissions are in: warm-up, bulk and steady. */
  expectSteady: { hotline: number; industry: number };
  drainedAt: number;
  cpu3: CpuDelta;
  load3a: number[];
  load3b: number[];
}

export async function steadyPhase(
  b: Bench,
  client: IngestClient,
  probes: Probes,
  cpuSnapshot: () => Promise<CpuSnapshot>,
  steadyItems: readonly Item[],
  bulk: BulkResult,
): Promise<SteadyPhaseResult> {
  const { args, steadyCount } = b;
  const { base, expectBulk } = bulk;
  const { partnerRows, settled, diagnose } = probes;
  log(`  3. latency: ${args.rate} submissions/s for ${args.seconds} s through POST /v1/submissions...`);
  const sentAt = new Float64Array(steadyCount);
  const ackAt = new Float64Array(steadyCount);
  const ingestErrors: string[] = [];
  const cpu3a = await cpuSnapshot();
  const load3a = loadavg();
  const t3 = Date.now();
  const steady = await steadyLoad({
    total: steadyCount,
    rate: args.rate,
    tickMs: args.tickMs,
    maxInFlight: 64,
    send: async (from, to) => {
      const batch = steadyItems.slice(from, to).map((i) => i.sub);
      const at = Date.now();
      for (let i = from; i < to; i++) sentAt[i] = at;
      try {
        const res = await client.submit(batch);
        const done = Date.now();
        for (let i = from; i < to; i++) ackAt[i] = done;
        if (res.receipt.accepted !== batch.length) ingestErrors.push(`status ${res.status} ${JSON.stringify(res.receipt)}`);
      } catch (err) {
        ingestErrors.push((err as Error).message);
      }
    },
  });
  if (ingestErrors.length) throw new Error(`ingest refused or failed ${ingestErrors.length} requests, e.g. ${ingestErrors[0]}`);
  const expectSteady = {
    hotline: base.hotline + expectBulk.hotline + sum(steadyItems, (i) => i.hotlineRows),
    industry: base.industry + expectBulk.industry + sum(steadyItems, (i) => i.industryRows),
  };
  const drainedAt = await waitUntil(
    "both partner databases to hold the steady submissions",
    async () => {
      const r = await partnerRows();
      return r.hotline >= expectSteady.hotline && r.industry >= expectSteady.industry;
    },
    180_000,
    200,
    diagnose,
  );
  const cpu3b = await cpuSnapshot();
  const load3b = loadavg();
  const cpu3 = cpuDelta(cpu3a, cpu3b);
  log(
    `     sent in ${steady.seconds.toFixed(1)} s, last row ${((drainedAt - t3) / 1000 - steady.seconds).toFixed(1)} s after the last send`,
  );
  await waitUntil("the pipeline to settle after the steady phase", settled, 60_000, 300, diagnose);
  return { sentAt, ackAt, t3, steady, expectSteady, drainedAt, cpu3, load3a, load3b };
}

/** Per steady submission (NaN where not found), the time it reached each point of the pipeline (epoch ms). */
export interface StageTimes {
  partnerAt: Float64Array;
  dedupAt: Float64Array;
  canonicalAt: Float64Array;
  issuedAt: Float64Array;
  feedAt: Float64Array;
}

export async function readStageTimes(b: Bench, setup: Setup, steadyItems: readonly Item[]): Promise<StageTimes> {
  const { steadyCount, admin, kafka, codec, res } = b;
  const { hubDb, partnerDbs, names, feedTopics } = setup;
  log("  reading timestamps back (partner rows, dedup, canonical and feed topics)...");
  const idx = new Map(steadyItems.map((it, i) => [it.md5, i]));
  const partnerAt = new Float64Array(steadyCount).fill(NaN);
  {
    const { rows } = await partnerDbs.hotline.pool.query<{ value: string; t: number }>(
      "SELECT value, (extract(epoch FROM updated_at) * 1000)::float8 AS t FROM partner_hashes WHERE alg = 'md5' AND value = ANY($1::text[])",
      [steadyItems.map((i) => i.md5)],
    );
    for (const r of rows) {
      const i = idx.get(r.value);
      if (i !== undefined) partnerAt[i] = Number(r.t);
    }
  }
  const dedupAt = new Float64Array(steadyCount).fill(NaN);
  const recordIdx = new Map<string, number>();
  {
    const bySub = new Map(steadyItems.map((it, i) => [it.sub.submissionId, i]));
    const { rows } = await hubDb.pool.query<{ submission_id: string; record_id: string; t: number }>(
      "SELECT submission_id, record_id::text, (extract(epoch FROM applied_at) * 1000)::float8 AS t FROM applied_submissions WHERE submission_id LIKE 'steady-%'",
    );
    for (const r of rows) {
      const i = bySub.get(r.submission_id);
      if (i === undefined) continue;
      dedupAt[i] = Number(r.t);
      recordIdx.set(r.record_id, i);
    }
  }
  const readTopicFully = async (topic: string, onMessage: (m: KafkaMessage) => void): Promise<void> => {
    const ends = await admin.fetchTopicOffsets(topic);
    const need = new Map(ends.filter((e) => Number(e.high) > Number(e.low)).map((e) => [e.partition, Number(e.high) - 1]));
    if (!need.size) return;
    const groupId = uniqueName("bench-read");
    res.groups.push(groupId);
    res.saveState();
    const consumer = kafka.consumer({
      groupId,
      maxWaitTimeInMs: 200,
      maxBytesPerPartition: 4 << 20,
      sessionTimeout: 6000,
      heartbeatInterval: 2000,
    });
    res.consumers.push(consumer);
    await consumer.connect();
    try {
      await consumer.subscribe({ topic, fromBeginning: true });
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`reading ${topic}: timed out`)), 90_000);
        consumer
          .run({
            autoCommit: false,
            eachBatch: async ({ batch }) => {
              for (const m of batch.messages) onMessage(m);
              const last = batch.messages[batch.messages.length - 1];
              if (last && Number(last.offset) >= (need.get(batch.partition) ?? Infinity)) need.delete(batch.partition);
              if (need.size === 0) {
                clearTimeout(timer);
                resolve();
              }
            },
          })
          .catch(reject);
      });
    } finally {
      await consumer.disconnect();
    }
  };
  const canonicalAt = new Float64Array(steadyCount).fill(NaN);
  await readTopicFully(names.canonical, (m) => {
    const i = m.key ? recordIdx.get(m.key.toString()) : undefined;
    if (i !== undefined && Number.isNaN(canonicalAt[i])) canonicalAt[i] = Number(m.timestamp);
  });
  const issuedAt = new Float64Array(steadyCount).fill(NaN);
  const feedAt = new Float64Array(steadyCount).fill(NaN);
  await readTopicFully(feedTopics[0] as string, (m) => {
    const k = m.key?.toString() ?? "";
    if (!k.startsWith("md5:")) return;
    const i = idx.get(k.slice(4));
    if (i === undefined || !Number.isNaN(feedAt[i])) return;
    feedAt[i] = Number(m.timestamp);
    issuedAt[i] = codec.decode("FeedRecord", m.value ?? Buffer.alloc(0)).value.issuedAt;
  });
  return { partnerAt, dedupAt, canonicalAt, issuedAt, feedAt };
}
