/**
 * The pipeline benchmark's printed report: the figures as tables on stdout (results.ts writes the
 * same to bench-results/pipeline.json, with the latency plot). It prints what figures.ts computed,
 * and derives only the ratios shown beside them.
 */
import { cpus } from "node:os";
import type { Bench } from "./context.ts";
import type { Figures, LogFigures, Measurements } from "./figures.ts";
import type { CpuDelta } from "./proc.ts";
import { fmt, table } from "./util.ts";
import type { Summary } from "./util.ts";

/** The printed report: the tables, and the notes on warnings and group re-joins. */
export function reportLines(b: Bench, m: Measurements, f: Figures, l: LogFigures): string[] {
  return [
    ...headerLines(b, m, f, l),
    ...throughputSection(b, m, f, l),
    ...stagesSection(b, m, f, l),
    ...latencySection(b, m, f, l),
    ...cpuSection(b, m, f, l),
  ];
}

/** The heading: date, machine, and the load average through the run. */
function headerLines(b: Bench, m: Measurements, _f: Figures, _l: LogFigures): string[] {
  const { started, loadBefore } = b;
  const { loadAfter: loadAfterRaw } = m.raw;
  const { load2a, load2b } = m.bulk;
  const { load3a, load3b } = m.steady;
  const la = (x: number[]) => x.map((v) => v.toFixed(2)).join(" ");
  const out: string[] = [];
  out.push("");
  out.push(
    `hashrelay pipeline benchmark, ${started.toISOString()} — synthetic submissions (random digests), ${cpus().length} CPUs, Node ${process.version}`,
  );
  out.push(
    `load average: before ${la(loadBefore)} | after raw ${la(loadAfterRaw)} | pipeline bulk ${la(load2a)} → ${la(load2b)} | steady ${la(load3a)} → ${la(load3b)}`,
  );
  return out;
}

/** Throughput: the raw baseline beside the pipeline, for the bulk. */
function throughputSection(b: Bench, m: Measurements, f: Figures, _l: LogFigures): string[] {
  const { args } = b;
  const { produceSeconds: rawProduceSeconds, consumeSeconds: rawConsumeSeconds, bulkTotal } = m.raw;
  const { publishSeconds, e2eSeconds, feedRecords2, lastRowAt, t2 } = m.bulk;
  const { rawProduce, rawConsume, pipelineRate, feedRate, ratios } = f;
  const out: string[] = [];
  out.push("");
  out.push(`throughput, ${fmt(args.count)} submissions`);
  out.push(
    table(
      ["what", "records", "seconds", "records/s", "vs raw produce"],
      [
        [
          "raw: kafkajs produce, batches of 500, acks -1, idempotent",
          fmt(args.count),
          rawProduceSeconds.toFixed(2),
          fmt(rawProduce),
          "1.000",
        ],
        [
          "raw: kafkajs consume, consumer group (join → last record)",
          fmt(bulkTotal),
          rawConsumeSeconds.toFixed(2),
          fmt(rawConsume),
          (rawConsume / rawProduce).toFixed(3),
        ],
        [
          "pipeline: publish to hashes.submitted.v1 (as raw produce)",
          fmt(args.count),
          publishSeconds.toFixed(2),
          fmt(args.count / publishSeconds),
          (args.count / publishSeconds / rawProduce).toFixed(3),
        ],
        [
          "pipeline: submissions, end to end (both partner DBs complete)",
          fmt(args.count),
          e2eSeconds.toFixed(2),
          fmt(pipelineRate),
          ratios.pipelineToRawProduceThroughput.toFixed(3),
        ],
        [
          "pipeline: feed records (2 feeds), same interval",
          fmt(feedRecords2),
          e2eSeconds.toFixed(2),
          fmt(feedRate),
          (feedRate / rawProduce).toFixed(3),
        ],
      ],
    ),
  );
  out.push(
    `  (last partner row's updated_at: ${((lastRowAt - t2) / 1000).toFixed(2)} s after the first publish; the polling adds up to 0.2 s)`,
  );
  return out;
}

/** When each stage had handled the whole bulk, and its batches. */
function stagesSection(b: Bench, m: Measurements, _f: Figures, l: LogFigures): string[] {
  const { args } = b;
  const { publishSeconds, lastDedupAt, t2, finish, expectBulk, expectBulkFeed } = m.bulk;
  const { batches2 } = l;
  const out: string[] = [];
  out.push("");
  out.push("pipeline stages during the bulk (sampled every 200 ms): when each had handled all of it");
  out.push(
    table(
      ["stage", "done after s", "avg records/s", "batches", "per batch", "ms/batch"],
      [
        ["published (bench producer)", publishSeconds.toFixed(2), fmt(args.count / publishSeconds), "", "", ""],
        [
          "dedup applied (applied_submissions)",
          (finish.dedupApplied ?? NaN).toFixed(1),
          fmt(args.count / (finish.dedupApplied ?? NaN)),
          fmt(batches2["dedup"]?.batches ?? NaN),
          fmt(batches2["dedup"]?.perBatch ?? NaN, 1),
          fmt(batches2["dedup"]?.medianGapMs ?? NaN),
        ],
        ["  last dedup transaction started (applied_at)", ((lastDedupAt - t2) / 1000).toFixed(2), "", "", "", ""],
        [
          "canonical records on Kafka (dedup relay)",
          (finish.canonicalOnKafka ?? NaN).toFixed(1),
          fmt(args.count / (finish.canonicalOnKafka ?? NaN)),
          "",
          "",
          "",
        ],
        [
          "distribution applied (distributed_records)",
          (finish.distributed ?? NaN).toFixed(1),
          fmt(args.count / (finish.distributed ?? NaN)),
          fmt(batches2["distribution"]?.batches ?? NaN),
          fmt(batches2["distribution"]?.perBatch ?? NaN, 1),
          fmt(batches2["distribution"]?.medianGapMs ?? NaN),
        ],
        [
          "feed records on Kafka (distribution relay)",
          (finish.feedOnKafka ?? NaN).toFixed(1),
          fmt(expectBulkFeed / (finish.feedOnKafka ?? NaN)),
          "",
          "",
          "",
        ],
        [
          "hotline-uk database complete",
          (finish.hotlineRows ?? NaN).toFixed(1),
          fmt(expectBulk.hotline / (finish.hotlineRows ?? NaN)),
          fmt(batches2["sink-hotline"]?.batches ?? NaN),
          fmt(batches2["sink-hotline"]?.perBatch ?? NaN, 1),
          fmt(batches2["sink-hotline"]?.medianGapMs ?? NaN),
        ],
        [
          "industry-x database complete",
          (finish.industryRows ?? NaN).toFixed(1),
          fmt(expectBulk.industry / (finish.industryRows ?? NaN)),
          fmt(batches2["sink-industry"]?.batches ?? NaN),
          fmt(batches2["sink-industry"]?.perBatch ?? NaN, 1),
          fmt(batches2["sink-industry"]?.medianGapMs ?? NaN),
        ],
      ],
    ),
  );
  return out;
}

/** Latency of the steady phase beside the raw baseline, and where it goes stage by stage. */
function latencySection(b: Bench, m: Measurements, f: Figures, l: LogFigures): string[] {
  const { args, steadyCount } = b;
  const { latency: rawLatency } = m.raw;
  const { e2e, stages, ratios } = f;
  const { batches3 } = l;
  const out: string[] = [];
  out.push("");
  out.push(`latency at ${args.rate}/s offered for ${args.seconds} s (${fmt(steadyCount)} records; one send per ${args.tickMs} ms)`);
  const latRow = (what: string, s: Summary): string[] => [what, fmt(s.n), fmt(s.p50, 1), fmt(s.p95, 1), fmt(s.p99, 1), fmt(s.max, 1)];
  out.push(
    table(
      ["what (ms)", "n", "p50", "p95", "p99", "max"],
      [
        latRow("raw: kafkajs produce → consumer group sees it", rawLatency),
        latRow("pipeline: HTTP send → row in hotline-uk's database", e2e),
      ],
    ),
  );
  out.push(
    `ratios: pipeline/raw throughput ${ratios.pipelineToRawProduceThroughput.toFixed(4)} (raw is ${(1 / ratios.pipelineToRawProduceThroughput).toFixed(0)}× faster); pipeline/raw p50 latency ${ratios.pipelineToRawP50Latency.toFixed(0)}×, p99 ${ratios.pipelineToRawP99Latency.toFixed(0)}×`,
  );
  out.push("");
  out.push("where the steady phase's latency goes: time from the HTTP send until each point, cumulative (ms)");
  out.push(
    table(
      ["reached", "p50", "p95", "p99", "max"],
      stages.map((s) => [s.stage, fmt(s.s.p50, 1), fmt(s.s.p95, 1), fmt(s.s.p99, 1), fmt(s.s.max, 1)]),
    ),
  );
  out.push(
    `  batches while steady: ${Object.entries(batches3)
      .map(([n, b]) => `${n} ${fmt(b.batches)} (${fmt(b.perBatch, 1)}/batch, one every ${fmt(b.medianGapMs)} ms (median))`)
      .join(", ")}`,
  );
  return out;
}

/** CPU per process in the bulk and the steady phase, service log warnings, re-joins, and the checks that passed. */
function cpuSection(b: Bench, m: Measurements, _f: Figures, l: LogFigures): string[] {
  const { args, steadyCount } = b;
  const { cpu2 } = m.bulk;
  const { cpu3 } = m.steady;
  const { warnings } = l;
  const out: string[] = [];
  out.push("");
  const cpuRows = (d: CpuDelta, perItems: number) => {
    const rows = Object.entries(d.perLabel).sort((a, b) => b[1].cpuSeconds - a[1].cpuSeconds);
    return [
      ...rows.map(([label, v]) => [
        label,
        v.cpuSeconds.toFixed(1),
        ((1000 * v.cpuSeconds) / perItems).toFixed(2),
        v.runQueueWaitSeconds.toFixed(1),
      ]),
      [
        "all of the above (services, bench, broker, PostgreSQL)",
        d.oursCpuSeconds.toFixed(1),
        ((1000 * d.oursCpuSeconds) / perItems).toFixed(2),
        "",
      ],
      [
        "the hub's part (all of the above but the sinks, their backends and the bench)",
        d.hubCpuSeconds.toFixed(1),
        ((1000 * d.hubCpuSeconds) / perItems).toFixed(2),
        "",
      ],
      ["other processes on the machine (not this benchmark)", d.otherCpuSeconds.toFixed(1), "", ""],
    ];
  };
  out.push(
    `CPU seconds, CPU ms per submission, and seconds spent runnable but waiting for a CPU (run queue), during the bulk (${cpu2.seconds.toFixed(1)} s; all ${cpus().length} CPUs ${cpu2.machineBusyPercent.toFixed(0)}% busy) and the steady phase (${cpu3.seconds.toFixed(1)} s; ${cpu3.machineBusyPercent.toFixed(0)}% busy)`,
  );
  const steadyCpu = new Map(cpuRows(cpu3, steadyCount).map((r) => [r[0] as string, r]));
  out.push(
    table(
      ["process", "bulk: cpu s", "ms/sub", "waited s", "steady: cpu s", "ms/sub", "waited s"],
      cpuRows(cpu2, args.count).map((r) => [...r, ...(steadyCpu.get(r[0] as string)?.slice(1) ?? ["-", "-", "-"])]),
    ),
  );
  const warnList = Object.entries(warnings).filter(([, w]) => w.warn || w.error);
  if (warnList.length)
    out.push(
      `service log warnings/errors: ${warnList.map(([n, w]) => `${n} ${w.warn}/${w.error}${w.first ? ` ("${w.first}")` : ""}`).join("; ")}`,
    );
  const rejoins = Object.entries(warnings).filter(([, w]) => w.groupRejoins > 0);
  if (rejoins.length) {
    out.push(
      `consumer group re-joins (a batch outlasted CONSUMER_SESSION_TIMEOUT_MS, so the member was dropped and joined again): ${rejoins.map(([n, w]) => `${n} ${w.groupRejoins}`).join(", ")}`,
    );
  }
  out.push(
    "checks: partner databases hold exactly the expected rows, feed chains contiguous, no sink alerts, nothing rejected, no service restarts",
  );
  return out;
}
