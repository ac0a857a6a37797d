/**
 * The pipeline benchmark's written results: bench-results/pipeline.json (every figure, with the run's
 * settings, machine and service logs) and the latency plot bench-results/pipeline-latency.svg. It writes
 * what figures.ts computed; the printed tables are report.ts's. The JSON keeps one key order from run
 * to run, so two result files compare line by line.
 */
import { writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join, relative } from "node:path";
import { REPO_ROOT } from "../../services/shared/config.ts";
import { LOCAL_TOPIC_PLAN } from "../../services/shared/topics.ts";
import { WARMUP } from "./context.ts";
import type { Bench } from "./context.ts";
import type { Figures, LogFigures, Measurements } from "./figures.ts";
import type { Services } from "./services.ts";
import type { Setup } from "./setup.ts";
import { latencySvg } from "./svg.ts";
import { fmt } from "./util.ts";
import { BATCH } from "./workload.ts";

/** Writes bench-results/pipeline-latency.svg and bench-results/pipeline.json; returns the line saying so. */
export function writeResults(
  b: Bench,
  setup: Setup,
  services: Services,
  m: Measurements,
  f: Figures,
  l: LogFigures,
  loadAfter: number[],
): string {
  const { resultsDir, logDir } = b;
  const jsonFile = join(resultsDir, "pipeline.json");
  const svgFile = join(resultsDir, "pipeline-latency.svg");
  writeFileSync(svgFile, latencyChart(b, m, f));
  const report = {
    ...runDescription(b, setup, m, loadAfter),
    raw: rawSection(b, m, f),
    pipeline: {
      idle: m.idle,
      warmupSubmissions: WARMUP,
      bulk: bulkSection(b, m, f, l),
      steady: steadySection(m, f, l),
      serviceLogWarnings: l.warnings,
    },
    ratios: f.ratios,
    pids: Object.fromEntries(Object.entries(b.res.procs).map(([n, p]) => [n, p.child.pid])),
    files: {
      json: relative(REPO_ROOT, jsonFile),
      svg: relative(REPO_ROOT, svgFile),
      logs: Object.values(services.logFiles).map((f) => relative(REPO_ROOT, f)),
    },
  };
  writeFileSync(jsonFile, `${JSON.stringify(report, null, 2)}\n`);
  return `wrote ${relative(REPO_ROOT, jsonFile)}, ${relative(REPO_ROOT, svgFile)}, service logs in ${relative(REPO_ROOT, logDir)}/`;
}

const loadText = (x: number[]) => x.map((v) => v.toFixed(2)).join(" ");

/** The steady phase's latencies as points, with the per-second p50 and p99 and the headline figures. */
function latencyChart(b: Bench, m: Measurements, f: Figures): string {
  const { args, steadyCount, started } = b;
  const { latency: rawLatency } = m.raw;
  const { load3a, load3b } = m.steady;
  const { points, e2e, perSecond } = f;
  return latencySvg({
    points,
    p50: perSecond.map((p) => ({ x: p.second + 0.5, y: p.p50 })),
    p99: perSecond.map((p) => ({ x: p.second + 0.5, y: p.p99 })),
    seconds: Math.max(args.seconds, ...points.map((p) => p.x)),
    title: `hashrelay end-to-end latency at ${args.rate} submissions/s (ingest HTTP → hotline-uk's database)`,
    subtitle: [
      `${started.toISOString().slice(0, 16).replace("T", " ")} UTC, ${fmt(steadyCount)} synthetic submissions over ${args.seconds} s, one request per ${args.tickMs} ms; ${cpus().length} CPUs, load average ${loadText(load3a)} → ${loadText(load3b)}`,
      `pipeline: p50 ${fmt(e2e.p50)} ms, p95 ${fmt(e2e.p95)} ms, p99 ${fmt(e2e.p99)} ms, max ${fmt(e2e.max)} ms;  raw kafkajs produce → consume at the same rate: p50 ${fmt(rawLatency.p50, 1)} ms, p99 ${fmt(rawLatency.p99, 1)} ms`,
    ],
  });
}

/** What ran where: date, machine, load average through the run, arguments, partners, topics and service settings. */
function runDescription(b: Bench, setup: Setup, m: Measurements, loadAfter: number[]) {
  const { args, started, loadBefore } = b;
  return {
    benchmark: "pipeline",
    date: started.toISOString(),
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? "unknown",
    totalMemoryBytes: totalmem(),
    loadAverage: {
      before: loadBefore,
      afterRaw: m.raw.loadAfter,
      bulk: { before: m.bulk.load2a, after: m.bulk.load2b },
      steady: { before: m.steady.load3a, after: m.steady.load3b },
      after: loadAfter,
    },
    data: "random digests (md5, sha1, pdq) signed with a throw-away Ed25519 agency key (synthetic; no real hashes)",
    args,
    partners: setup.policies,
    topicPartitions: { submitted: LOCAL_TOPIC_PLAN.partitions, canonical: LOCAL_TOPIC_PLAN.partitions, feeds: 3 },
    serviceSettings: {
      LOG_LEVEL: "info",
      CONSUMER_SESSION_TIMEOUT_MS: 6000,
      CONSUMER_MAX_BATCH_BYTES: "default (1048576)",
      DISTRIBUTION_EXPORT_INTERVAL_MS: 0,
      PARTNER_BOOTSTRAP: "none",
    },
  };
}

/** Measurement 1: kafkajs alone. */
function rawSection(b: Bench, m: Measurements, f: Figures) {
  const { produceSeconds, consumeSeconds, bulkTotal, latency, steady } = m.raw;
  return {
    produce: { records: b.args.count, seconds: produceSeconds, perSecond: f.rawProduce, batch: BATCH },
    consume: { records: bulkTotal, seconds: consumeSeconds, perSecond: f.rawConsume },
    steady: { ...steady, latencyMs: latency },
  };
}

/** Measurement 2: the bulk through the whole pipeline. */
function bulkSection(b: Bench, m: Measurements, f: Figures, l: LogFigures) {
  const { publishSeconds, e2eSeconds, feedRecords2, lastRowAt, lastDedupAt, t2, finish, expectBulk, samples, cpu2 } = m.bulk;
  return {
    submissions: b.args.count,
    publishSeconds,
    endToEndSeconds: e2eSeconds,
    lastPartnerRowSeconds: (lastRowAt - t2) / 1000,
    lastDedupTransactionSeconds: (lastDedupAt - t2) / 1000,
    submissionsPerSecond: f.pipelineRate,
    feedRecords: feedRecords2,
    feedRecordsPerSecond: f.feedRate,
    partnerRows: expectBulk,
    stageDoneSeconds: finish,
    samples,
    batchesFromLogs: l.batches2,
    cpu: cpu2,
  };
}

/** Measurement 3: the steady rate over HTTP, its latency and where the time went. */
function steadySection(m: Measurements, f: Figures, l: LogFigures) {
  const { steady, t3, drainedAt, cpu3 } = m.steady;
  return {
    ...steady,
    latencyMs: f.e2e,
    cumulativeMsFromSend: Object.fromEntries(f.stages.map((s) => [s.stage, s.s])),
    perSecond: f.perSecond,
    lastRowAfterLastSendSeconds: (drainedAt - t3) / 1000 - steady.seconds,
    batchesFromLogs: l.batches3,
    cpu: cpu3,
  };
}
