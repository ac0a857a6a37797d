/**
 * The pipeline benchmark's import mode: --count signed submissions (1,000,000 unless given) as one
 * JSON Lines object in S3, the way a force uploads one (services/force-cli: signed lines streamed
 * through @aws-sdk/lib-storage's Upload, then POST /v1/imports), through ingest's bulk import and
 * the whole pipeline to both partner databases.
 *
 * The submissions are signed and uploaded as they are made, never held, so this script's memory
 * does not grow with --count either. From POST /v1/imports on, every stage's progress is sampled
 * every 500 ms from what it records anyway: the import job's row (lines read), and the offsets dedup,
 * distribution and each sink store with their work in PostgreSQL (one offset a record: the warm-up's
 * are subtracted). Those are small tables, so sampling costs little beside a million-row load.
 */
import { Readable } from "node:stream";
import { Upload } from "@aws-sdk/lib-storage";
import type { IngestClient } from "../../services/force-cli/client.ts";
import type { Pool } from "../../services/shared/postgres.ts";
import type { ImportJob } from "../../services/shared/wire/ingest-api.ts";
import { submissionToJson } from "../../services/shared/wire/submission-json.ts";
import { stackS3Client } from "../../test/support/stack.ts";
import type { Bench } from "./context.ts";
import type { CpuDelta, CpuSnapshot } from "./proc.ts";
import { cpuDelta } from "./proc.ts";
import type { Probes } from "./services.ts";
import type { Setup } from "./setup.ts";
import { fmt, log, waitUntil } from "./util.ts";
import { itemStream } from "./workload.ts";

/** The stages whose end is timed, in pipeline order. */
export const STAGES = ["importRead", "dedupApplied", "distributed", "hotlineComplete", "industryComplete"] as const;
export type Stage = (typeof STAGES)[number];

/** Progress of each stage since POST /v1/imports, in records. */
export interface ImportSample {
  /** Seconds since POST /v1/imports. */
  readonly t: number;
  readonly linesRead: number;
  readonly dedupApplied: number;
  readonly distributed: number;
  readonly hotlineRows: number;
  readonly industryRows: number;
}

export interface ImportResult {
  readonly objectKey: string;
  readonly objectBytes: number;
  /** Rows the import entitles each partner to. */
  readonly expect: { readonly hotline: number; readonly industry: number };
  /** Signing and streaming the object to S3 (the force's part). */
  readonly uploadSeconds: number;
  /** Epoch ms of POST /v1/imports and of the sample that saw both partner databases complete. */
  readonly t0: number;
  readonly tBoth: number;
  /** Seconds after POST /v1/imports at which each stage had done the whole import. */
  readonly finish: Record<Stage, number>;
  readonly samples: ImportSample[];
  /** The import job's final row, as GET /v1/imports/{id} gives it. */
  readonly job: ImportJob;
  readonly cpu: CpuDelta;
}

/** Signs and uploads the object as a force does; returns its key, size and the rows it entitles each partner to. */
async function upload(b: Bench, setup: Setup) {
  const { args, env, namespace, res } = b;
  const objectKey = `imports/${setup.signer.agencyId}/${namespace}.jsonl`;
  res.objects.push(objectKey, `${objectKey}.receipt.json`);
  res.saveState();
  const tally = { bytes: 0, hotline: 0, industry: 0 };
  // Lines go out 500 at a time: Upload gathers them into 5 MiB parts and keeps at most four in flight.
  function* body(): Generator<Buffer> {
    let lines: string[] = [];
    const out = () => {
      const chunk = Buffer.from(`${lines.join("\n")}\n`);
      tally.bytes += chunk.length;
      lines = [];
      return chunk;
    };
    for (const item of itemStream(setup.signer, args.count, "import")) {
      tally.hotline += item.hotlineRows;
      tally.industry += item.industryRows;
      lines.push(JSON.stringify(submissionToJson(item.sub)));
      if (lines.length === 500) yield out();
    }
    if (lines.length) yield out();
  }
  const s3 = stackS3Client(env.s3);
  const started = Date.now();
  try {
    await new Upload({
      client: s3,
      params: { Bucket: env.s3.bucket, Key: objectKey, Body: Readable.from(body()), ContentType: "application/x-ndjson" },
    }).done();
  } finally {
    s3.destroy();
  }
  return {
    objectKey,
    objectBytes: tally.bytes,
    expect: { hotline: tally.hotline, industry: tally.industry },
    uploadSeconds: (Date.now() - started) / 1000,
  };
}

/** Records each stage has handled so far (the warm-up's included), from small tables only. */
function stageProgress(setup: Setup, probes: Probes) {
  const { hubDb, partnerDbs, names, feedTopics, groupOf } = setup;
  const consumed = (pool: Pool, group: string, topic: string) =>
    probes.count(pool, "SELECT coalesce(sum(next_offset), 0)::int8 AS n FROM consumer_offsets WHERE consumer_group = $1 AND topic = $2", [
      group,
      topic,
    ]);
  return async () => ({
    dedupApplied: await consumed(hubDb.pool, groupOf.dedup, names.submitted),
    distributed: await consumed(hubDb.pool, groupOf.distribution, names.canonical),
    hotlineRows: await consumed(partnerDbs.hotline.pool, groupOf.hotline, feedTopics[0] as string),
    industryRows: await consumed(partnerDbs.industry.pool, groupOf.industry, feedTopics[1] as string),
  });
}

export async function importPhase(
  b: Bench,
  setup: Setup,
  client: IngestClient,
  probes: Probes,
  cpuSnapshot: () => Promise<CpuSnapshot>,
): Promise<ImportResult> {
  const { args } = b;
  log(`  import: signing ${fmt(args.count)} submissions and streaming them to S3 as one JSON Lines object, as a force uploads...`);
  const up = await upload(b, setup);
  log(
    `     uploaded ${(up.objectBytes / 1e6).toFixed(1)} MB in ${up.uploadSeconds.toFixed(1)} s; POST /v1/imports, then until both partner databases hold it...`,
  );
  const progress = stageProgress(setup, probes);
  const base = await progress();
  const cpuBefore = await cpuSnapshot();
  const t0 = Date.now();
  const started = await client.startImport(up.objectKey);
  const targets: Record<Exclude<Stage, "importRead">, number> = {
    dedupApplied: args.count,
    distributed: args.count, // one canonical record a submission: every digest is new
    hotlineComplete: up.expect.hotline,
    industryComplete: up.expect.industry,
  };
  // The timeout (6 ms a submission) is for a stalled pipeline, not a slow one.
  const followed = await followStages({ t0, timeoutMs: 600_000 + args.count * 6, probes, targets }, async () => {
    const job = await client.getImport(started.importId);
    const p = await progress();
    return {
      job,
      counts: {
        dedupApplied: p.dedupApplied - base.dedupApplied,
        distributed: p.distributed - base.distributed,
        hotlineRows: p.hotlineRows - base.hotlineRows,
        industryRows: p.industryRows - base.industryRows,
      },
    };
  });
  if (followed.failed !== null) throw new Error(`import ${started.importId} failed: ${followed.failed}`);
  const cpu = cpuDelta(cpuBefore, await cpuSnapshot());
  log(`     both partner databases complete ${((followed.tBoth - t0) / 1000).toFixed(1)} s after POST /v1/imports`);
  await waitUntil("the pipeline to settle after the import", probes.settled, 120_000, 500, probes.diagnose);
  const job = await client.getImport(started.importId);
  const problems = jobProblems(job, args.count, up.objectBytes);
  if (problems.length) throw new Error(`import check failed:\n  ${problems.join("\n  ")}`);
  return { ...up, t0, tBoth: followed.tBoth, finish: followed.finish as Record<Stage, number>, samples: followed.samples, job, cpu };
}

/**
 * Samples every 500 ms until the import is done and both partner databases hold it (or the import
 * failed); `finish` records when each stage first reached its target, in seconds after t0.
 */
async function followStages(
  o: { t0: number; timeoutMs: number; probes: Probes; targets: Record<Exclude<Stage, "importRead">, number> },
  read: () => Promise<{ job: ImportJob; counts: Omit<ImportSample, "t" | "linesRead"> }>,
): Promise<{ tBoth: number; finish: Partial<Record<Stage, number>>; samples: ImportSample[]; failed: string | null }> {
  const { t0, targets } = o;
  const samples: ImportSample[] = [];
  const finish: Partial<Record<Stage, number>> = {};
  let lastLog = t0;
  // waitUntil retries a probe that throws, so a failed import ends the wait and is reported after it.
  let failed: string | null = null;
  const tBoth = await waitUntil(
    "both partner databases to hold the import",
    async () => {
      const { job, counts } = await read();
      if (job.status === "failed") failed = job.error ?? "no error recorded";
      if (failed !== null) return true;
      const s: ImportSample = { t: (Date.now() - t0) / 1000, linesRead: job.linesRead ?? 0, ...counts };
      samples.push(s);
      const reached: Record<Stage, boolean> = {
        importRead: job.status === "done",
        dedupApplied: s.dedupApplied >= targets.dedupApplied,
        distributed: s.distributed >= targets.distributed,
        hotlineComplete: s.hotlineRows >= targets.hotlineComplete,
        industryComplete: s.industryRows >= targets.industryComplete,
      };
      for (const stage of STAGES) if (finish[stage] === undefined && reached[stage]) finish[stage] = s.t;
      if (Date.now() - lastLog >= 30_000) {
        lastLog = Date.now();
        log(
          `     ${s.t.toFixed(0)} s: read ${fmt(s.linesRead)}, dedup ${fmt(s.dedupApplied)}, distribution ${fmt(s.distributed)}, ` +
            `rows ${fmt(s.hotlineRows)} + ${fmt(s.industryRows)}`,
        );
      }
      return reached.importRead && reached.hotlineComplete && reached.industryComplete;
    },
    o.timeoutMs,
    500,
    o.probes.diagnose,
  );
  return { tBoth, finish, samples, failed };
}

/** What is wrong with a finished import job of `lines` submissions in an object of `bytes`: nothing, or each problem. */
function jobProblems(job: ImportJob, lines: number, bytes: number): string[] {
  const problems: string[] = [];
  if (job.status !== "done") problems.push(`import ${job.status}: ${job.error}`);
  if (job.receipt.accepted !== lines || job.receipt.duplicates || job.receipt.rejected)
    problems.push(`import receipt ${JSON.stringify(job.receipt)}, expected ${lines} accepted and nothing else`);
  if (job.linesRead !== lines) problems.push(`import read ${job.linesRead} lines, expected ${lines}`);
  if (job.bytesRead !== bytes || job.totalBytes !== bytes)
    problems.push(`import read ${job.bytesRead} of ${job.totalBytes} bytes, the object has ${bytes}`);
  return problems;
}
