/**
 * The pipeline benchmark's figures, computed from the measurements alone once verification passed:
 * latency per steady submission and its breakdown by stage, throughput against the raw baseline,
 * and batch sizes and warnings from the service logs.
 */
import type { BulkResult } from "./bulk.ts";
import type { IdleResult } from "./idle.ts";
import type { Bench } from "./context.ts";
import { batchStats, readLogLines } from "./logs.ts";
import type { BatchStats, LogLine } from "./logs.ts";
import type { RawResult } from "./raw.ts";
import type { Services } from "./services.ts";
import type { StageTimes, SteadyPhaseResult } from "./steady.ts";
import { sleep, summarize } from "./util.ts";
import type { Summary } from "./util.ts";

/** Everything measured, phase by phase. */
export interface Measurements {
  readonly raw: RawResult;
  readonly bulk: BulkResult;
  readonly steady: SteadyPhaseResult;
  readonly times: StageTimes;
  /** --idle-seconds: CPU with no traffic; null when not measured. */
  readonly idle: IdleResult | null;
}

export interface Figures {
  points: { x: number; y: number }[];
  /** HTTP send to row in hotline-uk's database, per steady submission. */
  e2e: Summary;
  perSecond: { second: number; n: number; p50: number; p99: number; max: number }[];
  /** Time from the HTTP send until each point of the pipeline, cumulative. */
  stages: { stage: string; s: Summary }[];
  rawProduce: number;
  rawConsume: number;
  pipelineRate: number;
  feedRate: number;
  ratios: { pipelineToRawProduceThroughput: number; pipelineToRawP50Latency: number; pipelineToRawP99Latency: number };
}

export function computeFigures(b: Bench, m: Measurements): Figures {
  const { args, steadyCount } = b;
  const { produceSeconds: rawProduceSeconds, consumeSeconds: rawConsumeSeconds, bulkTotal, latency: rawLatency } = m.raw;
  const { e2eSeconds, feedRecords2 } = m.bulk;
  const { sentAt, ackAt, t3 } = m.steady;
  const { partnerAt, dedupAt, canonicalAt, issuedAt, feedAt } = m.times;
  const lat: number[] = [];
  const points: { x: number; y: number }[] = [];
  for (let i = 0; i < steadyCount; i++) {
    const l = (partnerAt[i] as number) - (sentAt[i] as number);
    lat.push(l);
    points.push({ x: ((sentAt[i] as number) - t3) / 1000, y: l });
  }
  const e2e = summarize(lat);
  const perSecond: { second: number; n: number; p50: number; p99: number; max: number }[] = [];
  {
    const buckets = new Map<number, number[]>();
    for (const p of points) {
      const s = Math.floor(p.x);
      const b = buckets.get(s) ?? [];
      b.push(p.y);
      buckets.set(s, b);
    }
    for (const [s, v] of [...buckets].sort((a, b) => a[0] - b[0])) {
      const sm = summarize(v);
      perSecond.push({ second: s, n: sm.n, p50: sm.p50, p99: sm.p99, max: sm.max });
    }
  }
  const cumulative = (arr: Float64Array) => summarize([...arr].map((v, i) => v - (sentAt[i] as number)).filter((v) => Number.isFinite(v)));
  const stages = [
    { stage: "ingest answered 202 (in hashes.submitted.v1)", s: cumulative(ackAt) },
    { stage: "dedup applied it (transaction start)", s: cumulative(dedupAt) },
    { stage: "canonical record on Kafka (dedup outbox relay)", s: cumulative(canonicalAt) },
    { stage: "feed record issued (distribution transaction)", s: cumulative(issuedAt) },
    { stage: "feed record on Kafka (distribution outbox relay)", s: cumulative(feedAt) },
    { stage: "row in hotline-uk's database (sink transaction)", s: e2e },
  ];

  const rawProduce = args.count / rawProduceSeconds;
  const rawConsume = bulkTotal / rawConsumeSeconds;
  const pipelineRate = args.count / e2eSeconds;
  const feedRate = feedRecords2 / e2eSeconds;
  const ratios = {
    pipelineToRawProduceThroughput: pipelineRate / rawProduce,
    pipelineToRawP50Latency: e2e.p50 / rawLatency.p50,
    pipelineToRawP99Latency: e2e.p99 / rawLatency.p99,
  };
  return { points, e2e, perSecond, stages, rawProduce, rawConsume, pipelineRate, feedRate, ratios };
}

export interface LogFigures {
  batches2: Record<string, BatchStats>;
  batches3: Record<string, BatchStats>;
  warnings: Record<string, { warn: number; error: number; first: string | null; groupRejoins: number }>;
}

/**
 * Assignments beyond each consumer's first: the exactly-once consumer logs one on every
 * assignment, and a process may run several (distribution: its canonical consumer and one per
 * partner feedback topic, told apart by partnerId), so each consumer's first is its join.
 */
function rejoins(lines: readonly LogLine[]): number {
  const assignments = lines.filter((l) => l.msg === "partitions assigned; resuming from stored offsets");
  const consumers = new Set(assignments.map((l) => String(l.fields["partnerId"] ?? "")));
  return assignments.length - consumers.size;
}

/** Batch sizes per stage during the bulk and the steady phase, and warnings, from the service logs. */
export async function logFigures(b: Bench, services: Services, m: Measurements): Promise<LogFigures> {
  const procs = b.res.procs;
  const { logFiles, serviceOf } = services;
  const { t2, settledAt2 } = m.bulk;
  const { t3, drainedAt } = m.steady;
  // batch sizes from the logs (flush what the processes wrote first)
  await sleep(300);
  const logLines = Object.fromEntries(Object.entries(logFiles).map(([n, f]) => [n, readLogLines(f)]));
  const batchesIn = (from: number, to: number) =>
    Object.fromEntries(
      Object.keys(procs)
        .map((n) => [n, batchStats(logLines[n] ?? [], serviceOf[n] as string, from, to)] as const)
        .filter(([, s]) => s !== null),
    ) as Record<string, BatchStats>;
  const batches2 = batchesIn(t2, settledAt2);
  const batches3 = batchesIn(t3, drainedAt);
  const warnings = Object.fromEntries(
    Object.entries(logLines).map(([n, ls]) => [
      n,
      {
        warn: ls.filter((l) => l.level === 40).length,
        error: ls.filter((l) => l.level >= 50).length,
        first: ls.find((l) => l.level >= 50)?.msg ?? ls.find((l) => l.level === 40)?.msg ?? null,
        groupRejoins: rejoins(ls),
      },
    ]),
  );
  return { batches2, batches3, warnings };
}
