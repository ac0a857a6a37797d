/**
 * The import mode's report: the figures as tables on stdout, beside their targets (both partner
 * databases within 15 minutes, every service under 400 MB resident), and the same in
 * bench-results/pipeline-import.json. MB here are 10^6 bytes; /proc reports kB of 1024 bytes.
 */
import { writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join, relative } from "node:path";
import { REPO_ROOT } from "../../services/shared/config.ts";
import { LOCAL_TOPIC_PLAN } from "../../services/shared/topics.ts";
import { PARTNERS, WARMUP } from "./context.ts";
import type { Bench } from "./context.ts";
import { STAGES } from "./import.ts";
import type { ImportResult, Stage } from "./import.ts";
import { maxRss, rssAt } from "./memory.ts";
import type { MemoryRecord } from "./memory.ts";
import { BENCH_LABEL } from "./proc.ts";
import type { Services } from "./services.ts";
import type { Setup } from "./setup.ts";
import { fmt, table } from "./util.ts";

export const TARGETS = { bothPartnersSeconds: 15 * 60, rssBytes: 400e6 } as const;

/** Where RSS is shown, as fractions of the time from POST /v1/imports to both partner databases complete. */
const FRACTIONS = [0, 0.25, 0.5, 0.75, 1] as const;

const STAGE_LABEL: Record<Stage, string> = {
  importRead: "import read by ingest (job done)",
  dedupApplied: "dedup applied",
  distributed: "distribution applied",
  hotlineComplete: `${PARTNERS.hotline} database complete`,
  industryComplete: `${PARTNERS.industry} database complete`,
};

/** The stage each one waits for: all stages run at once, so this is how long a stage trailed the one feeding it. */
const UPSTREAM: Record<Stage, Stage | null> = {
  importRead: null,
  dedupApplied: "importRead",
  distributed: "dedupApplied",
  hotlineComplete: "distributed",
  industryComplete: "distributed",
};

const mb = (kb: number | null | undefined): string => (kb == null ? "-" : fmt((kb * 1024) / 1e6));
const la = (x: number[]) => x.map((v) => v.toFixed(2)).join(" ");

/** Memory per service process over the import, in kB. */
function memoryFigures(r: ImportResult, memory: MemoryRecord) {
  const at = rssAt(memory.samples, r.t0, r.tBoth, FRACTIONS);
  const max = maxRss(memory.samples, r.t0, r.tBoth);
  return Object.keys(memory.peakKb).map((name) => ({
    name,
    peakKb: memory.peakKb[name] as number,
    maxSampledKb: max[name] ?? null,
    rssAtKb: at[name] ?? FRACTIONS.map(() => null),
  }));
}

/** The printed report; `loadDuring` is the load average as the import started and as it ended. */
export function importReportLines(b: Bench, r: ImportResult, memory: MemoryRecord, loadDuring: number[][], loadAfter: number[]): string[] {
  const { args, started, loadBefore } = b;
  const bothSeconds = (r.tBoth - r.t0) / 1000;
  const totalSeconds = r.uploadSeconds + bothSeconds;
  const out: string[] = [""];
  out.push(
    `hashrelay pipeline benchmark, import mode, ${started.toISOString()} — ${fmt(args.count)} synthetic signed submissions (random digests) ` +
      `through one S3 bulk import, ${cpus().length} CPUs, Node ${process.version}`,
  );
  out.push(
    `load average: before ${la(loadBefore)} | import ${la(loadDuring[0] ?? [])} → ${la(loadDuring[1] ?? [])} | after ${la(loadAfter)}`,
  );
  out.push(
    `object: s3://…/${r.objectKey}, ${(r.objectBytes / 1e6).toFixed(1)} MB, ${fmt(args.count)} lines, ` +
      `signed and uploaded in ${r.uploadSeconds.toFixed(1)} s (the force's part, before POST /v1/imports); warm-up ${WARMUP} over HTTP first`,
  );
  out.push("");
  const records: Record<Stage, number> = {
    importRead: args.count,
    dedupApplied: args.count,
    distributed: args.count,
    hotlineComplete: r.expect.hotline,
    industryComplete: r.expect.industry,
  };
  out.push(
    table(
      ["stage (seconds after POST /v1/imports)", "done at", "after its upstream", "records", "records/s (from 0)"],
      STAGES.map((s) => {
        const at = r.finish[s];
        const upstream = UPSTREAM[s];
        return [
          STAGE_LABEL[s],
          at.toFixed(1),
          (at - (upstream ? r.finish[upstream] : 0)).toFixed(1),
          fmt(records[s]),
          fmt(records[s] / at),
        ];
      }),
    ),
  );
  const met = totalSeconds <= TARGETS.bothPartnersSeconds;
  out.push(
    `to both partner databases: ${bothSeconds.toFixed(1)} s after POST /v1/imports, ${totalSeconds.toFixed(1)} s (${(totalSeconds / 60).toFixed(1)} min) ` +
      `with signing and upload — target under ${TARGETS.bothPartnersSeconds / 60} min: ${met ? "met" : "MISSED"}`,
  );
  out.push("");
  out.push(
    "memory per service process, MB (10^6 bytes): peak = VmHWM since start; RSS = VmRSS sampled every 1 s, at 0/25/50/75/100% of the " +
      "time from POST /v1/imports to both partner databases complete",
  );
  const cpuOf = (name: string) => r.cpu.perLabel[name]?.cpuSeconds;
  out.push(
    table(
      ["process", "peak", "max RSS", "0%", "25%", "50%", "75%", "100%", "CPU s", `under ${TARGETS.rssBytes / 1e6} MB`],
      memoryFigures(r, memory).map((m) => [
        m.name,
        mb(m.peakKb),
        mb(m.maxSampledKb),
        ...m.rssAtKb.map(mb),
        cpuOf(m.name)?.toFixed(1) ?? "-",
        m.peakKb * 1024 < TARGETS.rssBytes ? "yes" : "NO",
      ]),
    ),
  );
  const shared = (label: string) => r.cpu.perLabel[label]?.cpuSeconds.toFixed(1) ?? "-";
  out.push(
    `CPU from POST /v1/imports to both partner databases (${r.cpu.seconds.toFixed(1)} s): all ${cpus().length} CPUs ${r.cpu.machineBusyPercent.toFixed(0)}% busy; ` +
      `PostgreSQL ${shared("postgres server, all (shared)")} s, broker ${shared("kafka broker (shared)")} s, ` +
      `this script ${shared(BENCH_LABEL)} s, others' processes ${r.cpu.otherCpuSeconds.toFixed(1)} s`,
  );
  out.push("");
  out.push(
    `checks: passed — import done with ${fmt(r.job.receipt.accepted)} accepted, 0 duplicates, 0 rejected, every line and byte read ` +
      `(${fmt(r.job.bytesRead ?? 0)} of ${fmt(r.objectBytes)}); dedup applied ${fmt(WARMUP + args.count)}; partner rows exactly as entitled ` +
      `(${PARTNERS.hotline} ${fmt(r.expect.hotline)}, ${PARTNERS.industry} ${fmt(r.expect.industry)}, plus the warm-up's); ` +
      "feed chains contiguous; no sink alerts; nothing on the dead-letter topic; no service restarted",
  );
  return out;
}

/** Writes bench-results/pipeline-import.json; returns the line saying so. */
export function writeImportResults(
  b: Bench,
  setup: Setup,
  services: Services,
  r: ImportResult,
  memory: MemoryRecord,
  loadDuring: number[][],
  loadAfter: number[],
): string {
  const file = join(b.resultsDir, "pipeline-import.json");
  const bothSeconds = (r.tBoth - r.t0) / 1000;
  const report = {
    benchmark: "pipeline --import",
    date: b.started.toISOString(),
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? "unknown",
    totalMemoryBytes: totalmem(),
    loadAverage: { before: b.loadBefore, importStart: loadDuring[0], importEnd: loadDuring[1], after: loadAfter },
    data: "random digests (md5, sha1, pdq) signed with a throw-away Ed25519 agency key (synthetic; no real hashes)",
    args: b.args,
    partners: setup.policies,
    topicPartitions: { submitted: LOCAL_TOPIC_PLAN.partitions, canonical: LOCAL_TOPIC_PLAN.partitions, feeds: 3 },
    targets: TARGETS,
    object: { key: r.objectKey, bytes: r.objectBytes, lines: b.args.count },
    uploadSeconds: r.uploadSeconds,
    toBothPartnersSeconds: bothSeconds,
    totalSeconds: r.uploadSeconds + bothSeconds,
    stageDoneSeconds: r.finish,
    partnerRows: r.expect,
    job: r.job,
    memory: {
      fractions: FRACTIONS,
      processes: memoryFigures(r, memory),
      samples: memory.samples.map((s) => ({ t: (s.t - r.t0) / 1000, rssKb: s.rssKb })),
    },
    cpu: r.cpu,
    samples: r.samples,
    pids: Object.fromEntries(Object.entries(b.res.procs).map(([n, p]) => [n, p.child.pid])),
    logs: Object.values(services.logFiles).map((f) => relative(REPO_ROOT, f)),
  };
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  return `wrote ${relative(REPO_ROOT, file)}, service logs in ${relative(REPO_ROOT, b.logDir)}/`;
}
