/**
 * Benchmark: the whole hashrelay pipeline beside a bare kafkajs produce/consume, in one run against
 * the real local stack (`make up`). Synthetic data only: random digests signed with throw-away keys.
 *
 *   npx tsx bench/pipeline.ts [--count 10000] [--rate 200] [--seconds 30] [--tick-ms 50]
 *
 * Set-up: a fresh hub database, a fresh topic namespace (core topics with 6 partitions, two feed
 * topics with 3) with the ACLs the namespace needs, a hub key, one synthetic force, and two
 * partners, each with a database of its own:
 *   hotline-uk   UK categories A, B and C, indicative or better, md5 + sha1, via Kafka (wide);
 *   industry-x   A and B only, md5 only, ICS scheme, via Kafka (narrower).
 * Both are partners the local stack has Kafka principals for (test/support/stack.ts LOCAL_PARTNERS);
 * their feed topics and sink consumer groups carry the run's namespace. Every submission has md5,
 * sha1 and pdq; grades cycle A/A1, B/B1, A/A2, C, so hotline-uk gets 2 rows per submission and the
 * industry partner 1 row for three submissions in four.
 *
 * Three measurements:
 *   1. raw      kafkajs, nothing else running: --count pre-encoded signed Submissions (the bytes
 *               ingest would publish) produced with createDurableProducer (idempotent, one request
 *               in flight, acks -1) in sequential batches of 500 to a fresh topic with the settings of
 *               hashes.submitted.v1, then consumed back by a consumer group (from joining to the last
 *               record); then the same producer at --rate for --seconds (same ticks as 3), each record
 *               stamped with its send time, latency = time the consumer sees it - send time.
 *   2. pipeline dedup, distribution and two partner sinks, each a separate process
 *               (test/support/processes.ts), ingest too. After a warm-up of 200 submissions over
 *               HTTP, --count signed submissions go straight to <ns>.hashes.submitted.v1 as fast as
 *               one producer can, and the clock runs until both partner databases hold every row
 *               they are entitled to (polled every 200 ms; the last row's updated_at is reported
 *               beside it). Submissions/s end to end, feed records/s (feed topics' high
 *               watermarks), and when each stage finished (sampled), with the CPU each process used.
 *   3. latency  --rate submissions/s for --seconds through POST /v1/submissions of the ingest
 *               process (IngestClient, one signed request per --tick-ms tick, open loop: requests do
 *               not wait for earlier answers, at most 64 in flight). Send time per md5; after the
 *               pipeline settles, latency = hotline-uk's partner_hashes.updated_at (PostgreSQL clock,
 *               same machine) - send time. Also broken down by stage from timestamps the pipeline
 *               keeps anyway: ingest's answer, dedup's applied_at, the Kafka timestamps of the
 *               canonical and feed records, the feed record's issuedAt.
 * Every service runs as its own Kafka principal (ingest, dedup, distribution, each partner); this
 * script's own client (provisioning, the raw baseline, inspection, clean-up) is the hub admin.
 * Services run with their production defaults (LOG_LEVEL info, 1 MiB batches) except
 * CONSUMER_SESSION_TIMEOUT_MS=6000 and no S3 exports or bootstrap. Their logs go to
 * bench-results/pipeline-logs/, and batch sizes per stage are read back from them.
 *
 * For the bottleneck, it also records per process (from /proc) the CPU time used and the time spent
 * runnable but waiting for a CPU, for the service processes, their PostgreSQL backends, the broker,
 * the whole PostgreSQL server and the rest of the machine (other people's work on a shared box).
 *
 * Afterwards the pipeline must be settled (consumer_offsets at the high watermarks, outboxes
 * empty), the partner databases must hold exactly the expected rows, every feed chain contiguous,
 * no sink alerts and nothing rejected. Prints a table, writes bench-results/pipeline.json and
 * bench-results/pipeline-latency.svg (latency over time, drawn by hand). Databases, topics, ACLs,
 * consumer groups and service processes it made are removed at the end, also on error or Ctrl-C;
 * a detached janitor (this script with --janitor) removes them if the run itself is killed.
 */
import { ADMIN_PRINCIPAL, accessPlan, applyAccessPlan, consumerGroups, toAclEntry } from "../services/shared/kafka-access.ts";
import { sinkConsumerGroup } from "../services/partner-sink/main.ts";
import { execFileSync, spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { createWriteStream, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import type { WriteStream } from "node:fs";
import { createServer } from "node:net";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import type { AclEntry, Consumer, KafkaMessage, Message } from "kafkajs";
import pg from "pg";
import { registerPartner } from "../services/admin/registry.ts";
import { DISTRIBUTION_MIGRATIONS } from "../services/distribution/main.ts";
import type { PartnerPolicy } from "../services/distribution/policy.ts";
import { setPolicy } from "../services/distribution/policy-store.ts";
import { IngestClient } from "../services/force-cli/client.ts";
import type { AgencySigner } from "../services/force-cli/client.ts";
import { partitionKey } from "../services/ingest/partition-key.ts";
import { AvroCodec } from "../services/shared/wire/codec.ts";
import { REPO_ROOT } from "../services/shared/config.ts";
import { createDurableProducer, createKafka, kafkaConnection, provisionTopics } from "../services/shared/kafka.ts";
import { createLogger } from "../services/shared/logging.ts";
import { migrate } from "../services/shared/postgres.ts";
import type { Pool } from "../services/shared/postgres.ts";
import type { Grade, Submission } from "../services/shared/wire/records.ts";
import { LOCAL_TOPIC_PLAN, coreTopicSpecs, feedTopicSpec, topicNames } from "../services/shared/topics.ts";
import { registerTestAgency, signedSubmission } from "../test/support/agencies.ts";
import { randomHashes } from "../test/support/fixtures.ts";
import { createHubKey } from "../test/support/pipeline.ts";
import { startServiceProcess } from "../test/support/processes.ts";
import type { ServiceProcess } from "../test/support/processes.ts";
import { LOCAL_PARTNERS, freshDatabase, principalEnv, stackEnv, uniqueName } from "../test/support/stack.ts";
import type { TestDatabase } from "../test/support/stack.ts";

// ---------------------------------------------------------------------------------------------
// arguments and small helpers

interface Args {
  count: number;
  rate: number;
  seconds: number;
  tickMs: number;
}

const USAGE = "usage: npx tsx bench/pipeline.ts [--count 10000] [--rate 200] [--seconds 30] [--tick-ms 50]";

function parseArgs(argv: string[]): Args {
  const args: Args = { count: 10_000, rate: 200, seconds: 30, tickMs: 50 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (flag === "--help" || flag === "-h") {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    }
    if (value === undefined) throw new Error(`${flag} needs a value; ${USAGE}`);
    const n = Number(value.replace(/_/g, ""));
    if (!Number.isFinite(n) || n <= 0) throw new Error(`${flag}: not a positive number: ${value}`);
    if (flag === "--count") args.count = Math.round(n);
    else if (flag === "--rate") args.rate = n;
    else if (flag === "--seconds") args.seconds = n;
    else if (flag === "--tick-ms") args.tickMs = Math.max(1, Math.round(n));
    else throw new Error(`unknown argument ${flag}; ${USAGE}`);
    i++;
  }
  return args;
}

const T0 = Date.now();
const log = (s: string): void => void process.stderr.write(`[${((Date.now() - T0) / 1000).toFixed(1).padStart(5)} s] ${s}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const fmt = (n: number, digits = 0): string =>
  Number.isFinite(n) ? n.toLocaleString("en-GB", { minimumFractionDigits: digits, maximumFractionDigits: digits }) : "-";

interface Summary {
  n: number;
  mean: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  min: number;
}

/** Nearest-rank percentile of an ascending array. */
function percentile(sorted: readonly number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

function summarize(values: readonly number[]): Summary {
  const s = [...values].sort((a, b) => a - b);
  return {
    n: s.length,
    mean: s.length ? s.reduce((a, b) => a + b, 0) / s.length : NaN,
    p50: percentile(s, 50),
    p95: percentile(s, 95),
    p99: percentile(s, 99),
    max: s.length ? (s[s.length - 1] as number) : NaN,
    min: s.length ? (s[0] as number) : NaN,
  };
}

function table(header: string[], rows: string[][]): string {
  const cells = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...cells.map((r) => (r[c] ?? "").length)));
  const line = (r: string[]) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c] as number) : cell.padStart(widths[c] as number))).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function waitUntil(what: string, probe: () => Promise<boolean>, timeoutMs: number, everyMs = 200, onTimeout?: () => Promise<string>): Promise<number> {
  const start = Date.now();
  let last: unknown;
  for (;;) {
    try {
      if (await probe()) return Date.now();
    } catch (err) {
      last = err;
    }
    if (Date.now() - start > timeoutMs) {
      const extra = onTimeout ? `\n${await onTimeout().catch((e: unknown) => `(diagnosis failed: ${(e as Error).message})`)}` : "";
      throw new Error(`timed out after ${(timeoutMs / 1000).toFixed(0)} s waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ""}${extra}`);
    }
    await sleep(everyMs);
  }
}

// ---------------------------------------------------------------------------------------------
// CPU accounting from /proc (Linux): per process, and the machine as a whole

let CLK_TCK = 100;
try {
  CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
} catch {
  /* keep 100 */
}

function procCpuSeconds(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const rest = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return (Number(rest[11]) + Number(rest[12])) / CLK_TCK; // utime + stime
  } catch {
    return null;
  }
}

function machineJiffies(): { busy: number; total: number } {
  try {
    const first = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
    const v = first.trim().split(/\s+/).slice(1).map(Number);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return { busy: 0, total: 0 };
  }
}

function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = readFileSync(`/proc/${d}/stat`, "utf8");
      const rest = s.slice(s.lastIndexOf(")") + 2).split(" ");
      if (Number(rest[1]) === ppid) out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}

function pidFile(name: string): number | undefined {
  const f = join(REPO_ROOT, ".stack", `${name}.pid`);
  if (!existsSync(f)) return undefined;
  const n = Number(readFileSync(f, "utf8").trim());
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

/** Time the process's live threads spent runnable but waiting for a CPU (schedstat, second field). */
function runQueueWaitSeconds(pid: number | undefined): number {
  if (!pid) return 0;
  let ns = 0;
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, "utf8").split(" ")[1] ?? 0);
      } catch {
        /* thread gone */
      }
    }
  } catch {
    /* process gone */
  }
  return ns / 1e9;
}

interface CpuSnapshot {
  at: number;
  machine: { busy: number; total: number };
  /** label -> pid -> cpu seconds and run-queue wait seconds so far */
  groups: Map<string, Map<number, { cpu: number; wait: number }>>;
}

// ---------------------------------------------------------------------------------------------
// the workload

const GRADES: Grade[] = [
  { uk: "A", ics: "A1", vics: null },
  { uk: "B", ics: "B1", vics: null },
  { uk: "A", ics: "A2", vics: null },
  { uk: "C", ics: null, vics: null }, // not for the ICS partner (category C is outside its policy)
];

interface Item {
  readonly sub: Submission;
  readonly md5: string;
  readonly key: string;
  /** Rows this submission gives each partner. */
  readonly hotlineRows: number;
  readonly industryRows: number;
}

function makeItems(signer: AgencySigner, n: number, tag: string): Item[] {
  const out: Item[] = [];
  for (let i = 0; i < n; i++) {
    const grade = GRADES[i % GRADES.length] as Grade;
    const hashes = randomHashes(); // md5, sha1, pdq: random digests
    const sub = signedSubmission(signer, { submissionId: `${tag}-${randomUUID()}`, hashes, grade });
    const md5 = hashes.find((h) => h.alg === "md5")?.value as string;
    out.push({ sub, md5, key: partitionKey(hashes), hotlineRows: 2, industryRows: grade.uk === "C" ? 0 : 1 });
  }
  return out;
}

const sum = (items: readonly Item[], f: (i: Item) => number): number => items.reduce((n, i) => n + f(i), 0);

// ---------------------------------------------------------------------------------------------
// a steady, open-loop offered load

interface SteadyResult {
  offered: number;
  seconds: number;
  sends: number;
  maxTickLagMs: number;
  deferredTicks: number;
}

/**
 * Calls send(from, to) once per tick with the items due by the end of that tick (by the schedule,
 * not by how earlier sends went), without waiting for earlier sends unless maxInFlight are pending.
 */
async function steadyLoad(o: { total: number; rate: number; tickMs: number; maxInFlight: number; send: (from: number, to: number) => Promise<void> }): Promise<SteadyResult> {
  const inFlight = new Set<Promise<void>>();
  const t0 = Date.now();
  let sent = 0;
  let tick = 0;
  let sends = 0;
  let deferred = 0;
  let maxLag = 0;
  while (sent < o.total) {
    const target = t0 + tick * o.tickMs;
    const wait = target - Date.now();
    if (wait > 0) await sleep(wait);
    maxLag = Math.max(maxLag, Date.now() - target);
    tick++;
    const due = Math.min(o.total, Math.round((tick * o.tickMs * o.rate) / 1000));
    if (due <= sent) continue;
    if (inFlight.size >= o.maxInFlight) {
      deferred++;
      continue;
    }
    const p: Promise<void> = o.send(sent, due).finally(() => inFlight.delete(p));
    inFlight.add(p);
    sent = due;
    sends++;
  }
  const seconds = (Date.now() - t0) / 1000;
  await Promise.all(inFlight);
  return { offered: o.total, seconds, sends, maxTickLagMs: maxLag, deferredTicks: deferred };
}

// ---------------------------------------------------------------------------------------------
// the SVG plot, by hand

function niceStep(range: number, target: number): number {
  const raw = range / Math.max(1, target);
  const mag = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

const esc = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

function latencySvg(o: {
  points: { x: number; y: number }[];
  p50: { x: number; y: number }[];
  p99: { x: number; y: number }[];
  seconds: number;
  title: string;
  subtitle: string[];
}): string {
  const W = 1000;
  const H = 580;
  const m = { l: 78, r: 24, t: 56 + 16 * o.subtitle.length, b: 58 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const xStep = niceStep(o.seconds, 10);
  const xMax = Math.max(xStep, Math.ceil(o.seconds / xStep) * xStep);
  const yTop = Math.max(1, ...o.points.map((p) => p.y)) * 1.04;
  const yStep = niceStep(yTop, 8);
  const yMax = Math.ceil(yTop / yStep) * yStep;
  const X = (x: number) => (m.l + (x / xMax) * pw).toFixed(1);
  const Y = (y: number) => (m.t + ph - (Math.max(0, y) / yMax) * ph).toFixed(1);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">`);
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${m.l}" y="28" font-size="17" font-weight="bold" fill="#222">${esc(o.title)}</text>`);
  o.subtitle.forEach((line, i) => out.push(`<text x="${m.l}" y="${48 + 16 * i}" font-size="12.5" fill="#555">${esc(line)}</text>`));
  // grid and ticks
  out.push(`<g stroke="#e4e4e4" stroke-width="1">`);
  for (let y = 0; y <= yMax + 1e-9; y += yStep) out.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${Y(y)}" y2="${Y(y)}"/>`);
  for (let x = 0; x <= xMax + 1e-9; x += xStep) out.push(`<line x1="${X(x)}" x2="${X(x)}" y1="${m.t}" y2="${m.t + ph}"/>`);
  out.push(`</g>`);
  out.push(`<g font-size="12" fill="#333">`);
  for (let y = 0; y <= yMax + 1e-9; y += yStep) out.push(`<text x="${m.l - 8}" y="${(Number(Y(y)) + 4).toFixed(1)}" text-anchor="end">${fmt(y, yStep < 1 ? 1 : 0)}</text>`);
  for (let x = 0; x <= xMax + 1e-9; x += xStep) out.push(`<text x="${X(x)}" y="${m.t + ph + 18}" text-anchor="middle">${fmt(x, xStep < 1 ? 1 : 0)}</text>`);
  out.push(`</g>`);
  // axes
  out.push(`<g stroke="#333" stroke-width="1.2"><line x1="${m.l}" y1="${m.t + ph}" x2="${m.l + pw}" y2="${m.t + ph}"/><line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${m.t + ph}"/></g>`);
  out.push(`<text x="${m.l + pw / 2}" y="${H - 14}" font-size="13" text-anchor="middle" fill="#222">seconds since the start of the steady phase (send time of the submission)</text>`);
  out.push(`<text transform="translate(20 ${m.t + ph / 2}) rotate(-90)" font-size="13" text-anchor="middle" fill="#222">latency, ms (HTTP send → row in the partner's database)</text>`);
  // dots, then the per-second lines on top
  out.push(`<g fill="#1f77b4" fill-opacity="0.35">`);
  for (const p of o.points) out.push(`<circle cx="${X(p.x)}" cy="${Y(p.y)}" r="1.7"/>`);
  out.push(`</g>`);
  const poly = (pts: { x: number; y: number }[]) => pts.map((p) => `${X(p.x)},${Y(p.y)}`).join(" ");
  if (o.p99.length) out.push(`<polyline fill="none" stroke="#ff7f0e" stroke-width="1.8" stroke-dasharray="6 4" points="${poly(o.p99)}"/>`);
  if (o.p50.length) out.push(`<polyline fill="none" stroke="#d62728" stroke-width="2.4" points="${poly(o.p50)}"/>`);
  // legend
  const lx = m.l + pw - 310;
  const ly = m.t + 10;
  out.push(`<g font-size="12" fill="#222"><rect x="${lx}" y="${ly}" width="302" height="64" fill="#ffffff" fill-opacity="0.9" stroke="#bbb"/>`);
  out.push(`<circle cx="${lx + 16}" cy="${ly + 16}" r="3" fill="#1f77b4" fill-opacity="0.6"/><text x="${lx + 30}" y="${ly + 20}">one submission</text>`);
  out.push(`<line x1="${lx + 6}" x2="${lx + 26}" y1="${ly + 34}" y2="${ly + 34}" stroke="#d62728" stroke-width="2.4"/><text x="${lx + 30}" y="${ly + 38}">p50 of the submissions sent in each second</text>`);
  out.push(`<line x1="${lx + 6}" x2="${lx + 26}" y1="${ly + 52}" y2="${ly + 52}" stroke="#ff7f0e" stroke-width="1.8" stroke-dasharray="6 4"/><text x="${lx + 30}" y="${ly + 56}">p99 of the submissions sent in each second</text>`);
  out.push(`</g>`);
  out.push(`</svg>`);
  return `${out.join("\n")}\n`;
}

// ---------------------------------------------------------------------------------------------
// service logs: batch sizes per stage

interface LogLine {
  time: number;
  level: number;
  msg: string;
  fields: Record<string, unknown>;
}

function readLogLines(file: string): LogLine[] {
  if (!existsSync(file)) return [];
  const out: LogLine[] = [];
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const j = JSON.parse(line) as Record<string, unknown>;
      out.push({ time: Date.parse(String(j["time"])), level: Number(j["level"] ?? 0), msg: String(j["msg"] ?? ""), fields: j });
    } catch {
      /* not a log line */
    }
  }
  return out;
}

const BATCH_LOGS: Record<string, { msg: string; field: string }> = {
  dedup: { msg: "batch applied", field: "applied" },
  distribution: { msg: "canonical batch distributed", field: "records" },
  "partner-sink": { msg: "feed batch applied", field: "applied" },
};

interface BatchStats {
  batches: number;
  items: number;
  perBatch: number;
  maxPerBatch: number;
  batchesPerSecond: number;
  /** Median time between one batch's log line and the next: the time per batch while there is a backlog. */
  medianGapMs: number;
}

function batchStats(lines: LogLine[], service: string, from: number, to: number): BatchStats | null {
  const spec = BATCH_LOGS[service];
  if (!spec) return null;
  const sel = lines.filter((l) => l.msg === spec.msg && l.time >= from && l.time <= to);
  const sizes = sel.map((l) => Number(l.fields[spec.field] ?? 0));
  const items = sizes.reduce((a, b) => a + b, 0);
  const times = sel.map((l) => l.time).sort((a, b) => a - b);
  const gaps = times.slice(1).map((x, i) => x - (times[i] as number)).sort((a, b) => a - b);
  return {
    medianGapMs: percentile(gaps, 50),
    batches: sel.length,
    items,
    perBatch: sel.length ? items / sel.length : 0,
    maxPerBatch: sizes.length ? Math.max(...sizes) : 0,
    batchesPerSecond: sel.length / Math.max(0.001, (to - from) / 1000),
  };
}

// ---------------------------------------------------------------------------------------------
// the janitor: removes what a run made when the run itself could not (killed with SIGKILL, e.g. by
// the tsx CLI, which SIGKILLs its child when it does not acknowledge a relayed Ctrl-C within 60 ms,
// as happens on a loaded machine)

interface JanitorState {
  benchPid: number;
  adminDatabaseUrl: string;
  brokers: string[];
  databases: string[];
  topics: string[];
  groups: string[];
  /** The ACLs granted for the run's namespace (every one names the namespace's topics or groups). */
  acls: AclEntry[];
  childPids: number[];
  /** The run's topic namespace: a service process with it in its environment is ours (restarts get new pids). */
  namespace: string | null;
  hubKeyDir: string | null;
}

/** Service processes of this repository running with TOPIC_NAMESPACE=<namespace>. */
function serviceProcessesOf(namespace: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      if (!readFileSync(`/proc/${d}/cmdline`, "utf8").includes(`${REPO_ROOT}services/`)) continue;
      if (readFileSync(`/proc/${d}/environ`, "utf8").split("\0").includes(`TOPIC_NAMESPACE=${namespace}`)) out.push(Number(d));
    } catch {
      /* gone, or not ours to read */
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8")); // a zombie is dead
  } catch {
    return false;
  }
}

/** A client as the hub admin (a super user): provisioning, the raw baseline, inspection and clean-up. */
function adminKafka(brokers: string[], clientId: string, level: "error" | "silent") {
  return createKafka({ ...kafkaConnection({ KAFKA_BROKERS: brokers, ...principalEnv(ADMIN_PRINCIPAL) }), clientId, logger: createLogger("bench", level) });
}

/** `bench/pipeline.ts --janitor <state file>`: started detached by every run; exits when the state file goes. */
async function janitor(file: string): Promise<void> {
  for (;;) {
    await sleep(1_000);
    if (!existsSync(file)) return;
    let st: JanitorState;
    try {
      st = JSON.parse(readFileSync(file, "utf8")) as JanitorState;
    } catch {
      continue; // being written
    }
    if (alive(st.benchPid)) continue;
    const pids = new Set([...st.childPids, ...(st.namespace ? serviceProcessesOf(st.namespace) : [])]);
    for (const pid of pids) {
      try {
        if (alive(pid) && readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(`${REPO_ROOT}services/`)) process.kill(pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
    const c = new pg.Client({ connectionString: st.adminDatabaseUrl });
    await c.connect().catch(() => undefined);
    for (const db of st.databases) await c.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`).catch(() => undefined);
    await c.end().catch(() => undefined);
    const admin = adminKafka(st.brokers, "bench-pipeline-janitor", "silent").admin();
    await admin.connect().catch(() => undefined);
    if (st.topics.length) await admin.deleteTopics({ topics: st.topics }).catch(() => undefined);
    if (st.acls?.length) await admin.deleteAcls({ filters: st.acls }).catch(() => undefined);
    // Killed members keep their groups until the session timeout (6 s) passes.
    for (let attempt = 0; attempt < 6 && st.groups.length; attempt++) {
      if (attempt) await sleep(3_000);
      await admin.deleteGroups(st.groups).catch(() => undefined);
      const existing = new Set((await admin.listGroups().catch(() => ({ groups: [] as { groupId: string }[] }))).groups.map((g) => g.groupId));
      st.groups = st.groups.filter((g) => existing.has(g));
    }
    await admin.disconnect().catch(() => undefined);
    if (st.hubKeyDir) rmSync(st.hubKeyDir, { recursive: true, force: true });
    rmSync(file, { force: true });
    return;
  }
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  // Service processes inherit this environment and find their own principals' credentials only
  // when it names none (this script's client takes the admin's from the local stack, not from here).
  delete process.env["KAFKA_SASL_USERNAME"];
  delete process.env["KAFKA_SASL_PASSWORD"];
  const steadyCount = Math.round(args.rate * args.seconds);
  const WARMUP = 200;
  const env = stackEnv();
  const codec = new AvroCodec();
  const started = new Date();
  const loadBefore = loadavg();
  const run = randomBytes(3).toString("hex");
  // Partners with local Kafka principals; the namespace keeps their feeds and groups apart from other runs.
  const PARTNERS = { hotline: "hotline-uk", industry: "industry-x" } as const;
  if (!Object.values(PARTNERS).every((p) => LOCAL_PARTNERS.includes(p))) throw new Error("bench partners need local Kafka principals");
  const namespace = uniqueName("bp");
  const resultsDir = join(REPO_ROOT, "bench-results");
  const logDir = join(resultsDir, "pipeline-logs");
  mkdirSync(logDir, { recursive: true });
  for (const f of readdirSync(logDir)) if (f.endsWith(".log")) rmSync(join(logDir, f));

  // kafkajs warnings (e.g. "Limiting retries for the idempotent producer...") would clutter the table.
  const kafka = adminKafka(env.brokers, `bench-pipeline-${run}`, "error");
  const admin = kafka.admin();
  const producer = createDurableProducer(kafka);

  // ---- everything made here, removed at the end ----
  const dbs: TestDatabase[] = [];
  const topics: string[] = [];
  const groups: string[] = [];
  const acls: AclEntry[] = [];
  const procs: Record<string, ServiceProcess> = {};
  const logStreams: WriteStream[] = [];
  const consumers: Consumer[] = [];
  let hubKeyDir: string | undefined;
  const stateFile = join(tmpdir(), `hashrelay-bench-pipeline-${process.pid}.json`);
  const saveState = (): void => {
    const st: JanitorState = {
      benchPid: process.pid,
      adminDatabaseUrl: env.databaseUrl,
      brokers: env.brokers,
      databases: dbs.map((d) => new URL(d.url).pathname.slice(1)),
      topics,
      groups,
      acls,
      childPids: Object.values(procs).flatMap((p) => (p.child.pid ? [p.child.pid] : [])),
      namespace,
      hubKeyDir: hubKeyDir ?? null,
    };
    writeFileSync(stateFile, JSON.stringify(st));
  };
  saveState();
  spawn(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url), "--janitor", stateFile], { cwd: REPO_ROOT, detached: true, stdio: "ignore" }).unref();
  let cleaned: Promise<void> | undefined;
  const cleanup = (): Promise<void> =>
    (cleaned ??= (async () => {
      await Promise.all(
        Object.entries(procs).map(async ([name, p]) => {
          const t = setTimeout(() => p.child.kill("SIGKILL"), 25_000);
          await p.kill("SIGTERM").catch((err: unknown) => log(`cleanup: stop ${name}: ${(err as Error).message}`));
          clearTimeout(t);
        }),
      );
      // A service the supervisor restarted while we stopped it would be left running: none may outlive the run.
      for (const pid of serviceProcessesOf(namespace)) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          /* gone */
        }
      }
      for (const s of logStreams) s.end();
      for (const c of consumers) await c.disconnect().catch(() => undefined);
      await producer.disconnect().catch(() => undefined);
      for (const db of dbs) await db.drop().catch((err: unknown) => log(`cleanup: drop database: ${(err as Error).message}`));
      if (topics.length) await admin.deleteTopics({ topics }).catch((err: unknown) => log(`cleanup: delete topics: ${(err as Error).message}`));
      if (acls.length) await admin.deleteAcls({ filters: acls }).catch((err: unknown) => log(`cleanup: delete ACLs: ${(err as Error).message}`));
      // A member killed without leaving (a second signal) keeps its group non-empty for up to the session timeout (6 s).
      let left = [...groups];
      for (let attempt = 0; left.length && attempt < 4; attempt++) {
        if (attempt) await sleep(3_000);
        await admin.deleteGroups(left).catch(() => undefined);
        const existing = new Set((await admin.listGroups().catch(() => ({ groups: [] as { groupId: string }[] }))).groups.map((g) => g.groupId));
        left = left.filter((g) => existing.has(g));
      }
      if (left.length) log(`cleanup: consumer groups left behind: ${left.join(", ")}`);
      if (hubKeyDir) rmSync(hubKeyDir, { recursive: true, force: true });
      await admin.disconnect().catch(() => undefined);
      rmSync(stateFile, { force: true }); // the janitor sees it gone and exits
    })());
  // `on`, not `once`: the tsx CLI relays a Ctrl-C a second time when we are slow to acknowledge it,
  // and with no listener left that second one would end the process before the cleanup is done.
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      if (cleaned) return;
      log(`bench/pipeline: ${signal}; cleaning up (databases, topics, processes)`);
      void cleanup().finally(() => process.exit(130));
    });
  }

  try {
    await admin.connect();
    log(`bench/pipeline: N=${fmt(args.count)}, steady ${args.rate}/s for ${args.seconds} s (${fmt(steadyCount)} submissions, one request per ${args.tickMs} ms), load average ${loadBefore.map((l) => l.toFixed(2)).join(" ")}`);

    // ================= set-up =================
    log("  fresh hub and partner databases, topics, hub key, one synthetic force, two partners...");
    const hubDb = await freshDatabase("bench_pipe_hub");
    dbs.push(hubDb);
    saveState();
    const partnerDbs = { hotline: await freshDatabase("bench_pipe_hotline"), industry: await freshDatabase("bench_pipe_industry") };
    dbs.push(partnerDbs.hotline, partnerDbs.industry);
    saveState();
    await migrate(hubDb.pool, [{ namespace: "distribution", dir: DISTRIBUTION_MIGRATIONS }]);
    const hubKey = await createHubKey(hubDb);
    hubKeyDir = dirname(hubKey.file);
    saveState();
    const signer = await registerTestAgency(hubDb.pool, "bench-force");
    const policies: Omit<PartnerPolicy, "version">[] = [
      { partnerId: PARTNERS.hotline, categories: ["A", "B", "C"], minGradingStatus: "indicative", algorithms: ["md5", "sha1"], scheme: "uk", extraFields: [], delivery: "kafka", feedPartitions: 3 },
      { partnerId: PARTNERS.industry, categories: ["A", "B"], minGradingStatus: "indicative", algorithms: ["md5"], scheme: "ics", extraFields: [], delivery: "kafka", feedPartitions: 3 },
    ];
    for (const p of policies) {
      await registerPartner(hubDb.pool, { partnerId: p.partnerId, name: `Synthetic ${p.partnerId}` });
      await setPolicy(hubDb.pool, p);
    }
    const names = topicNames(namespace);
    const rawNames = topicNames(uniqueName("bpraw"));
    const specs = [
      ...coreTopicSpecs(LOCAL_TOPIC_PLAN, names),
      ...policies.map((p) => feedTopicSpec(p.partnerId, { ...LOCAL_TOPIC_PLAN, partitions: p.feedPartitions }, names)),
      // the raw baseline's topic: the settings of hashes.submitted.v1
      ...coreTopicSpecs(LOCAL_TOPIC_PLAN, rawNames).filter((s) => s.topic === rawNames.submitted),
    ];
    topics.push(...specs.map((s) => s.topic));
    saveState();
    await provisionTopics(admin, specs);
    // What `bin/hashrelay access apply` grants in the namespace: the hub services and both partners
    // (the force submits over HTTP, or this script produces as the admin; the raw topic is admin-only).
    const grants = accessPlan({ names, namespace, partners: Object.values(PARTNERS), agencies: [] });
    acls.push(...grants.map(toAclEntry));
    saveState();
    await applyAccessPlan(admin, grants);
    const feedTopics = [names.feed(PARTNERS.hotline), names.feed(PARTNERS.industry)];
    const groupOf = {
      dedup: consumerGroups(namespace).dedup,
      distribution: consumerGroups(namespace).distribution,
      hotline: sinkConsumerGroup(PARTNERS.hotline, namespace),
      industry: sinkConsumerGroup(PARTNERS.industry, namespace),
    };
    groups.push(...Object.values(groupOf));
    saveState();

    log(`  signing ${fmt(args.count)} submissions for the raw baseline (random digests)...`);
    let t = Date.now();
    const rawItems = makeItems(signer, args.count, "raw");
    const encode = (items: readonly Item[]): Message[] => items.map((i) => ({ key: i.key, value: codec.encode("Submission", i.sub) }));
    const rawMessages = encode(rawItems);
    log(`  signed and encoded in ${((Date.now() - t) / 1000).toFixed(1)} s`);

    // ================= 1. raw kafkajs =================
    await producer.connect();
    const BATCH = 500;
    const RAW_WARMUP = Math.min(BATCH, args.count);
    await producer.send({ topic: rawNames.submitted, acks: -1, messages: rawMessages.slice(0, RAW_WARMUP) });
    log("  1. raw: produce...");
    t = Date.now();
    for (let i = 0; i < rawMessages.length; i += BATCH) await producer.send({ topic: rawNames.submitted, acks: -1, messages: rawMessages.slice(i, i + BATCH) });
    const rawProduceSeconds = (Date.now() - t) / 1000;

    log("  1. raw: consume with a consumer group...");
    const rawGroup = uniqueName("bench-raw");
    groups.push(rawGroup);
    saveState();
    const rawConsumer = kafka.consumer({ groupId: rawGroup, maxWaitTimeInMs: 500, sessionTimeout: 6000, heartbeatInterval: 2000 });
    consumers.push(rawConsumer);
    let joinedAt = 0;
    let bulkReceived = 0;
    let bulkLastAt = 0;
    const rawLatencies: number[] = [];
    let onBulkDone: () => void = () => undefined;
    let onSteadyProgress: () => void = () => undefined;
    const bulkDone = new Promise<void>((r) => (onBulkDone = r));
    rawConsumer.on(rawConsumer.events.GROUP_JOIN, () => (joinedAt ||= Date.now()));
    await rawConsumer.connect();
    await rawConsumer.subscribe({ topic: rawNames.submitted, fromBeginning: true });
    const bulkTotal = RAW_WARMUP + args.count;
    void rawConsumer.run({
      eachBatch: async ({ batch }) => {
        const now = Date.now();
        for (const m of batch.messages) {
          const h = m.headers?.["sent-at"];
          const sentAt = Buffer.isBuffer(h) ? Number(h.toString()) : typeof h === "string" ? Number(h) : NaN;
          if (Number.isFinite(sentAt)) {
            rawLatencies.push(now - sentAt);
          } else if (++bulkReceived === bulkTotal) {
            bulkLastAt = now;
            onBulkDone();
          }
        }
        if (rawLatencies.length) onSteadyProgress();
      },
    });
    await Promise.race([bulkDone, sleep(120_000).then(() => Promise.reject(new Error(`raw consume: ${bulkReceived} of ${bulkTotal} records after 120 s`)))]);
    const rawConsumeSeconds = (bulkLastAt - joinedAt) / 1000;

    log(`  1. raw: steady ${args.rate}/s for ${args.seconds} s, produce → consume latency...`);
    const steadyRawDone = new Promise<void>((r) => (onSteadyProgress = () => rawLatencies.length >= steadyCount && r()));
    const rawSendErrors: string[] = [];
    const rawSteady = await steadyLoad({
      total: steadyCount,
      rate: args.rate,
      tickMs: args.tickMs,
      maxInFlight: 64,
      send: async (from, to) => {
        const sentAt = String(Date.now());
        const messages = [];
        for (let i = from; i < to; i++) {
          const m = rawMessages[i % rawMessages.length] as Message;
          messages.push({ key: m.key ?? null, value: m.value, headers: { "sent-at": sentAt } });
        }
        await producer.send({ topic: rawNames.submitted, acks: -1, messages }).catch((err: unknown) => void rawSendErrors.push((err as Error).message));
      },
    });
    await Promise.race([steadyRawDone, sleep(60_000).then(() => Promise.reject(new Error(`raw steady: ${rawLatencies.length} of ${steadyCount} records consumed after 60 s`)))]);
    if (rawSendErrors.length) throw new Error(`raw steady: ${rawSendErrors.length} sends failed: ${rawSendErrors[0]}`);
    await rawConsumer.disconnect();
    const rawLatency = summarize(rawLatencies);
    const loadAfterRaw = loadavg();
    log(`     produce ${fmt(args.count / rawProduceSeconds)}/s, consume ${fmt(bulkTotal / rawConsumeSeconds)}/s, latency p50 ${rawLatency.p50} ms p99 ${rawLatency.p99} ms`);

    // ================= services as processes =================
    log("  starting ingest, dedup, distribution and two partner sinks as processes...");
    const ingestPort = await freePort();
    const common: Record<string, string> = {
      KAFKA_BROKERS: env.brokers.join(","),
      DATABASE_URL: hubDb.url,
      TOPIC_NAMESPACE: namespace,
      LOG_LEVEL: "info",
      CONSUMER_SESSION_TIMEOUT_MS: "6000",
      S3_ENDPOINT: env.s3.endpoint,
      S3_REGION: env.s3.region,
      S3_ACCESS_KEY_ID: env.s3.accessKeyId,
      S3_SECRET_ACCESS_KEY: env.s3.secretAccessKey,
      S3_BUCKET: env.s3.bucket,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
      KAFKAJS_NO_PARTITIONER_WARNING: "1",
    };
    const hubPublicKeys = `${hubKey.keyId}=${hubKey.publicKey.toString("base64")}`;
    const procSpecs: { name: string; service: string; env: Record<string, string> }[] = [
      { name: "ingest", service: "ingest", env: { ...common, INGEST_HOST: "127.0.0.1", INGEST_PORT: String(ingestPort) } },
      // No KAFKA_SASL_* here: each service process picks its own principal's local credentials,
      // and its consumer group defaults to consumerGroups(namespace), as groupOf names them.
      { name: "dedup", service: "dedup", env: { ...common } },
      {
        name: "distribution",
        service: "distribution",
        env: {
          ...common,
          HUB_KEY_ID: hubKey.keyId,
          HUB_SIGNING_KEY_FILE: hubKey.file,
          DISTRIBUTION_PSEUDONYM_SECRET: `bench-${run}-pseudonym-secret`,
          DISTRIBUTION_EXPORT_INTERVAL_MS: "0",
        },
      },
      ...(["hotline", "industry"] as const).map((k) => ({
        name: `sink-${k}`,
        service: "partner-sink",
        env: { ...common, PARTNER_ID: PARTNERS[k], PARTNER_DATABASE_URL: partnerDbs[k].url, HUB_PUBLIC_KEYS: hubPublicKeys, PARTNER_BOOTSTRAP: "none", PARTNER_HTTP_PORT: "0" },
      })),
    ];
    const logFiles: Record<string, string> = {};
    for (const s of procSpecs) {
      const p = startServiceProcess(s.service, s.env);
      procs[s.name] = p;
      saveState();
      const file = join(logDir, `${s.name}.log`);
      logFiles[s.name] = file;
      const stream = createWriteStream(file);
      logStreams.push(stream);
      p.child.stdout?.on("data", (c: Buffer) => stream.write(c));
      p.child.stderr?.on("data", (c: Buffer) => stream.write(c));
    }
    const serviceOf: Record<string, string> = Object.fromEntries(procSpecs.map((s) => [s.name, s.service]));

    // sign the pipeline's workloads while the services start
    log(`  signing ${fmt(WARMUP + args.count + steadyCount)} submissions for the pipeline while they start...`);
    const warmItems = makeItems(signer, WARMUP, "warm");
    const bulkItems = makeItems(signer, args.count, "bulk");
    const bulkMessages = encode(bulkItems);
    const steadyItems = makeItems(signer, steadyCount, "steady");

    const ingestUrl = `http://127.0.0.1:${ingestPort}`;
    const client = new IngestClient(ingestUrl, signer);

    // ---- probes ----
    const count = async (pool: Pool, sql: string, params: unknown[] = []): Promise<number> => Number((await pool.query<{ n: number }>(sql, params)).rows[0]?.n ?? 0);
    const partnerRows = async () => ({
      hotline: await count(partnerDbs.hotline.pool, "SELECT count(*)::int AS n FROM partner_hashes WHERE NOT removed"),
      industry: await count(partnerDbs.industry.pool, "SELECT count(*)::int AS n FROM partner_hashes WHERE NOT removed"),
    });
    const highSum = async (topic: string): Promise<number> => (await admin.fetchTopicOffsets(topic)).reduce((n, p) => n + Number(p.high), 0);
    const caughtUp = async (pool: Pool, group: string, topic: string): Promise<boolean> => {
      const ends = await admin.fetchTopicOffsets(topic);
      const { rows } = await pool.query<{ partition: number; next_offset: number }>("SELECT partition, next_offset FROM consumer_offsets WHERE consumer_group = $1 AND topic = $2", [group, topic]);
      const stored = new Map(rows.map((r) => [r.partition, Number(r.next_offset)]));
      return ends.every((e) => Number(e.high) === 0 || (stored.get(e.partition) ?? 0) >= Number(e.high));
    };
    const outboxes = async () => count(hubDb.pool, "SELECT ((SELECT count(*) FROM outbox) + (SELECT count(*) FROM feed_outbox))::int AS n");
    const settled = async (): Promise<boolean> =>
      (await outboxes()) === 0 &&
      (await caughtUp(hubDb.pool, groupOf.dedup, names.submitted)) &&
      (await caughtUp(hubDb.pool, groupOf.distribution, names.canonical)) &&
      (await caughtUp(partnerDbs.hotline.pool, groupOf.hotline, feedTopics[0] as string)) &&
      (await caughtUp(partnerDbs.industry.pool, groupOf.industry, feedTopics[1] as string)) &&
      (await outboxes()) === 0;
    const diagnose = async (): Promise<string> => {
      const lines: string[] = [];
      const stage = async (label: string, pool: Pool, group: string, topic: string) => {
        const ends = await admin.fetchTopicOffsets(topic);
        const { rows } = await pool.query<{ partition: number; next_offset: string }>("SELECT partition, next_offset::text FROM consumer_offsets WHERE consumer_group = $1 AND topic = $2", [group, topic]);
        lines.push(`${label}: high ${ends.map((e) => `${e.partition}:${e.high}`).join(" ")} | stored ${rows.map((r) => `${r.partition}:${r.next_offset}`).join(" ")}`);
      };
      await stage("dedup", hubDb.pool, groupOf.dedup, names.submitted).catch(() => undefined);
      await stage("distribution", hubDb.pool, groupOf.distribution, names.canonical).catch(() => undefined);
      await stage("sink hotline", partnerDbs.hotline.pool, groupOf.hotline, feedTopics[0] as string).catch(() => undefined);
      await stage("sink industry", partnerDbs.industry.pool, groupOf.industry, feedTopics[1] as string).catch(() => undefined);
      lines.push(`outbox rows: ${await outboxes().catch(() => "?")}; partner rows: ${JSON.stringify(await partnerRows().catch(() => "?"))}`);
      for (const [name, p] of Object.entries(procs)) {
        lines.push(`--- ${name} (${p.child.exitCode ?? p.child.signalCode ?? "running"}, restarts ${p.restarts})`, p.output.join("").split("\n").slice(-12).join("\n"));
      }
      return lines.join("\n");
    };

    // ---- CPU snapshots ----
    const ourDbNames = dbs.map((d) => new URL(d.url).pathname.slice(1));
    const kafkaPid = pidFile("kafka");
    const pgPid = pidFile("pg");
    const cpuSnapshot = async (): Promise<CpuSnapshot> => {
      const groupsMap: CpuSnapshot["groups"] = new Map();
      const add = (label: string, pid: number | undefined) => {
        const cpu = procCpuSeconds(pid);
        if (cpu === null || pid === undefined) return;
        const g = groupsMap.get(label) ?? new Map<number, { cpu: number; wait: number }>();
        g.set(pid, { cpu, wait: runQueueWaitSeconds(pid) });
        groupsMap.set(label, g);
      };
      for (const [name, p] of Object.entries(procs)) add(name, p.child.pid);
      const { rows } = await hubDb.pool.query<{ pid: number; application_name: string }>(
        "SELECT pid, application_name FROM pg_stat_activity WHERE datname = ANY($1::text[]) AND application_name LIKE 'hashrelay-%'",
        [ourDbNames],
      );
      for (const r of rows) add(`postgres backends of ${r.application_name.replace(/^hashrelay-sink-.*?(hotline|industry).*$/, "sink-$1")}`, r.pid);
      add("kafka broker (shared)", kafkaPid);
      if (pgPid) {
        add("postgres server, all (shared)", pgPid);
        for (const c of childrenOf(pgPid)) add("postgres server, all (shared)", c);
      }
      add("bench process (this)", process.pid);
      return { at: Date.now(), machine: machineJiffies(), groups: groupsMap };
    };
    const cpuDelta = (a: CpuSnapshot, b: CpuSnapshot) => {
      const seconds = (b.at - a.at) / 1000;
      const perLabel: Record<string, { cpuSeconds: number; percentOfOneCore: number; runQueueWaitSeconds: number }> = {};
      for (const [label, pids] of b.groups) {
        let cpu = 0;
        let wait = 0;
        for (const [pid, v] of pids) {
          const before = a.groups.get(label)?.get(pid);
          cpu += v.cpu - (before?.cpu ?? 0);
          wait += v.wait - (before?.wait ?? 0);
        }
        perLabel[label] = { cpuSeconds: cpu, percentOfOneCore: (100 * cpu) / seconds, runQueueWaitSeconds: wait };
      }
      const busy = b.machine.busy - a.machine.busy;
      const total = b.machine.total - a.machine.total;
      const machineBusyPercent = total > 0 ? (100 * busy) / total : NaN;
      // Everything of ours: the service processes, the bench, the broker and the whole PostgreSQL server (its backends included).
      const ours = Object.entries(perLabel).filter(([l]) => !l.startsWith("postgres backends")).reduce((n, [, v]) => n + v.cpuSeconds, 0);
      const machineCpuSeconds = (machineBusyPercent / 100) * cpus().length * seconds;
      return { seconds, machineBusyPercent, machineCpuSeconds, oursCpuSeconds: ours, otherCpuSeconds: Math.max(0, machineCpuSeconds - ours), perLabel };
    };

    await waitUntil("ingest /readyz", async () => (await fetch(`${ingestUrl}/readyz`)).ok, 120_000, 300, diagnose);

    // ================= warm-up through the whole pipeline =================
    log(`  warm-up: ${WARMUP} submissions over HTTP through the whole pipeline...`);
    for (let i = 0; i < warmItems.length; i += 100) {
      const res = await client.submit(warmItems.slice(i, i + 100).map((w) => w.sub));
      if (res.receipt.accepted !== Math.min(100, warmItems.length - i)) throw new Error(`warm-up: status ${res.status}, receipt ${JSON.stringify(res.receipt)}`);
    }
    const expectWarm = { hotline: sum(warmItems, (i) => i.hotlineRows), industry: sum(warmItems, (i) => i.industryRows) };
    await waitUntil("the warm-up to reach both partner databases", async () => {
      const r = await partnerRows();
      return r.hotline >= expectWarm.hotline && r.industry >= expectWarm.industry;
    }, 150_000, 300, diagnose);
    await waitUntil("the pipeline to settle after the warm-up", settled, 60_000, 300, diagnose);

    // ================= 2. pipeline throughput =================
    log(`  2. pipeline: ${fmt(args.count)} submissions straight to ${names.submitted}, until both partner databases hold everything...`);
    const hubCounts = async () => {
      const { rows } = await hubDb.pool.query<{ applied: number; distributed: number }>(
        "SELECT (SELECT count(*) FROM applied_submissions)::int AS applied, (SELECT count(*) FROM distributed_records)::int AS distributed",
      );
      return rows[0] ?? { applied: 0, distributed: 0 };
    };
    const base = {
      ...(await hubCounts()),
      canonical: await highSum(names.canonical),
      feed: (await highSum(feedTopics[0] as string)) + (await highSum(feedTopics[1] as string)),
      ...(await partnerRows()),
    };
    const expectBulk = { hotline: sum(bulkItems, (i) => i.hotlineRows), industry: sum(bulkItems, (i) => i.industryRows) };
    const expectBulkFeed = expectBulk.hotline + expectBulk.industry;
    const cpu2a = await cpuSnapshot();
    const load2a = loadavg();
    const t2 = Date.now();
    for (let i = 0; i < bulkMessages.length; i += BATCH) await producer.send({ topic: names.submitted, acks: -1, messages: bulkMessages.slice(i, i + BATCH) });
    const publishSeconds = (Date.now() - t2) / 1000;
    interface Sample {
      t: number;
      dedupApplied: number;
      canonicalOnKafka: number;
      distributed: number;
      feedOnKafka: number;
      hotlineRows: number;
      industryRows: number;
    }
    const samples: Sample[] = [];
    const finish: Partial<Record<keyof Omit<Sample, "t">, number>> = {};
    const targets: Record<keyof Omit<Sample, "t">, number> = {
      dedupApplied: args.count,
      canonicalOnKafka: args.count,
      distributed: args.count,
      feedOnKafka: expectBulkFeed,
      hotlineRows: expectBulk.hotline,
      industryRows: expectBulk.industry,
    };
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
          feedOnKafka: (await highSum(feedTopics[0] as string)) + (await highSum(feedTopics[1] as string)) - base.feed,
          hotlineRows: r.hotline - base.hotline,
          industryRows: r.industry - base.industry,
        };
        samples.push(s);
        for (const k of Object.keys(targets) as (keyof typeof targets)[]) if (finish[k] === undefined && s[k] >= targets[k]) finish[k] = s.t;
        return s.hotlineRows >= expectBulk.hotline && s.industryRows >= expectBulk.industry;
      },
      240_000,
      200,
      diagnose,
    );
    const cpu2b = await cpuSnapshot();
    const load2b = loadavg();
    const e2eSeconds = (settledAt2 - t2) / 1000;
    const epochMax = async (pool: Pool, sql: string) => Number((await pool.query<{ t: number }>(sql)).rows[0]?.t ?? NaN);
    const lastRowAt = Math.max(
      await epochMax(partnerDbs.hotline.pool, "SELECT (extract(epoch FROM max(updated_at)) * 1000)::float8 AS t FROM partner_hashes"),
      await epochMax(partnerDbs.industry.pool, "SELECT (extract(epoch FROM max(updated_at)) * 1000)::float8 AS t FROM partner_hashes"),
    );
    const lastDedupAt = await epochMax(hubDb.pool, "SELECT (extract(epoch FROM max(applied_at)) * 1000)::float8 AS t FROM applied_submissions");
    await waitUntil("the pipeline to settle after the bulk", settled, 60_000, 300, diagnose);
    const feedRecords2 = (await highSum(feedTopics[0] as string)) + (await highSum(feedTopics[1] as string)) - base.feed;
    const cpu2 = cpuDelta(cpu2a, cpu2b);
    log(`     ${fmt(args.count / e2eSeconds)} submissions/s end to end (${e2eSeconds.toFixed(1)} s), ${fmt(feedRecords2 / e2eSeconds)} feed records/s`);

    // ================= 3. latency at a steady load through ingest =================
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
    const expectSteady = { hotline: base.hotline + expectBulk.hotline + sum(steadyItems, (i) => i.hotlineRows), industry: base.industry + expectBulk.industry + sum(steadyItems, (i) => i.industryRows) };
    const drainedAt = await waitUntil("both partner databases to hold the steady submissions", async () => {
      const r = await partnerRows();
      return r.hotline >= expectSteady.hotline && r.industry >= expectSteady.industry;
    }, 180_000, 200, diagnose);
    const cpu3b = await cpuSnapshot();
    const load3b = loadavg();
    const cpu3 = cpuDelta(cpu3a, cpu3b);
    log(`     sent in ${steady.seconds.toFixed(1)} s, last row ${((drainedAt - t3) / 1000 - steady.seconds).toFixed(1)} s after the last send`);
    await waitUntil("the pipeline to settle after the steady phase", settled, 60_000, 300, diagnose);

    // ---- per-submission timestamps along the pipeline ----
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
      groups.push(groupId);
      saveState();
      const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200, maxBytesPerPartition: 4 << 20, sessionTimeout: 6000, heartbeatInterval: 2000 });
      consumers.push(consumer);
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

    // ---- verification ----
    log("  verifying the partner databases, feed chains and the DLQ...");
    const finalRows = await partnerRows();
    const problems: string[] = [];
    if (finalRows.hotline !== expectSteady.hotline) problems.push(`hotline holds ${finalRows.hotline} rows, expected ${expectSteady.hotline}`);
    if (finalRows.industry !== expectSteady.industry) problems.push(`industry holds ${finalRows.industry} rows, expected ${expectSteady.industry}`);
    const appliedTotal = (await hubCounts()).applied;
    if (appliedTotal !== WARMUP + args.count + steadyCount) problems.push(`dedup applied ${appliedTotal}, expected ${WARMUP + args.count + steadyCount}`);
    for (const [k, db] of Object.entries(partnerDbs)) {
      const { rows } = await db.pool.query<{ partition: number; n: number; max: number }>("SELECT partition, count(*)::int AS n, max(seq)::int AS max FROM feed_applied GROUP BY partition");
      for (const r of rows) if (r.n !== r.max) problems.push(`${k} feed partition ${r.partition}: ${r.n} applied, max seq ${r.max}`);
      const alerts = await count(db.pool, "SELECT count(*)::int AS n FROM sink_alerts");
      if (alerts) problems.push(`${k}: ${alerts} sink alerts`);
    }
    const rejected = await highSum(names.rejected);
    if (rejected) problems.push(`${rejected} records on ${names.rejected}`);
    if (partnerAt.some((v) => Number.isNaN(v))) problems.push("some steady submissions have no hotline row");
    const restarts = Object.entries(procs).filter(([, p]) => p.restarts > 0).map(([n, p]) => `${n} restarted ${p.restarts}×`);
    if (restarts.length) problems.push(...restarts);
    if (problems.length) throw new Error(`verification failed:\n  ${problems.join("\n  ")}`);

    // ================= figures =================
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
    const ratios = { pipelineToRawProduceThroughput: pipelineRate / rawProduce, pipelineToRawP50Latency: e2e.p50 / rawLatency.p50, pipelineToRawP99Latency: e2e.p99 / rawLatency.p99 };

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
          // The exactly-once consumer logs this on every assignment: more than one means the member re-joined its group.
          groupJoins: ls.filter((l) => l.msg === "partitions assigned; resuming from stored offsets").length,
        },
      ]),
    );

    // ================= report =================
    const loadAfter = loadavg();
    const la = (l: number[]) => l.map((x) => x.toFixed(2)).join(" ");
    const out: string[] = [];
    out.push("");
    out.push(`hashrelay pipeline benchmark, ${started.toISOString()} — synthetic submissions (random digests), ${cpus().length} CPUs, Node ${process.version}`);
    out.push(`load average: before ${la(loadBefore)} | after raw ${la(loadAfterRaw)} | pipeline bulk ${la(load2a)} → ${la(load2b)} | steady ${la(load3a)} → ${la(load3b)}`);
    out.push("");
    out.push(`throughput, ${fmt(args.count)} submissions`);
    out.push(
      table(
        ["what", "records", "seconds", "records/s", "vs raw produce"],
        [
          ["raw: kafkajs produce, batches of 500, acks -1, idempotent", fmt(args.count), rawProduceSeconds.toFixed(2), fmt(rawProduce), "1.000"],
          ["raw: kafkajs consume, consumer group (join → last record)", fmt(bulkTotal), rawConsumeSeconds.toFixed(2), fmt(rawConsume), (rawConsume / rawProduce).toFixed(3)],
          ["pipeline: publish to hashes.submitted.v1 (as raw produce)", fmt(args.count), publishSeconds.toFixed(2), fmt(args.count / publishSeconds), ((args.count / publishSeconds) / rawProduce).toFixed(3)],
          ["pipeline: submissions, end to end (both partner DBs complete)", fmt(args.count), e2eSeconds.toFixed(2), fmt(pipelineRate), ratios.pipelineToRawProduceThroughput.toFixed(3)],
          ["pipeline: feed records (2 feeds), same interval", fmt(feedRecords2), e2eSeconds.toFixed(2), fmt(feedRate), (feedRate / rawProduce).toFixed(3)],
        ],
      ),
    );
    out.push(`  (last partner row's updated_at: ${((lastRowAt - t2) / 1000).toFixed(2)} s after the first publish; the polling adds up to 0.2 s)`);
    out.push("");
    out.push("pipeline stages during the bulk (sampled every 200 ms): when each had handled all of it");
    out.push(
      table(
        ["stage", "done after s", "avg records/s", "batches", "per batch", "ms/batch"],
        [
          ["published (bench producer)", publishSeconds.toFixed(2), fmt(args.count / publishSeconds), "", "", ""],
          ["dedup applied (applied_submissions)", (finish.dedupApplied ?? NaN).toFixed(1), fmt(args.count / (finish.dedupApplied ?? NaN)), fmt(batches2["dedup"]?.batches ?? NaN), fmt(batches2["dedup"]?.perBatch ?? NaN, 1), fmt(batches2["dedup"]?.medianGapMs ?? NaN)],
          ["  last dedup transaction started (applied_at)", ((lastDedupAt - t2) / 1000).toFixed(2), "", "", "", ""],
          ["canonical records on Kafka (dedup relay)", (finish.canonicalOnKafka ?? NaN).toFixed(1), fmt(args.count / (finish.canonicalOnKafka ?? NaN)), "", "", ""],
          ["distribution applied (distributed_records)", (finish.distributed ?? NaN).toFixed(1), fmt(args.count / (finish.distributed ?? NaN)), fmt(batches2["distribution"]?.batches ?? NaN), fmt(batches2["distribution"]?.perBatch ?? NaN, 1), fmt(batches2["distribution"]?.medianGapMs ?? NaN)],
          ["feed records on Kafka (distribution relay)", (finish.feedOnKafka ?? NaN).toFixed(1), fmt(expectBulkFeed / (finish.feedOnKafka ?? NaN)), "", "", ""],
          ["hotline-uk database complete", (finish.hotlineRows ?? NaN).toFixed(1), fmt(expectBulk.hotline / (finish.hotlineRows ?? NaN)), fmt(batches2["sink-hotline"]?.batches ?? NaN), fmt(batches2["sink-hotline"]?.perBatch ?? NaN, 1), fmt(batches2["sink-hotline"]?.medianGapMs ?? NaN)],
          ["industry-x database complete", (finish.industryRows ?? NaN).toFixed(1), fmt(expectBulk.industry / (finish.industryRows ?? NaN)), fmt(batches2["sink-industry"]?.batches ?? NaN), fmt(batches2["sink-industry"]?.perBatch ?? NaN, 1), fmt(batches2["sink-industry"]?.medianGapMs ?? NaN)],
        ],
      ),
    );
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
    out.push(`ratios: pipeline/raw throughput ${ratios.pipelineToRawProduceThroughput.toFixed(4)} (raw is ${(1 / ratios.pipelineToRawProduceThroughput).toFixed(0)}× faster); pipeline/raw p50 latency ${ratios.pipelineToRawP50Latency.toFixed(0)}×, p99 ${ratios.pipelineToRawP99Latency.toFixed(0)}×`);
    out.push("");
    out.push("where the steady phase's latency goes: time from the HTTP send until each point, cumulative (ms)");
    out.push(table(["reached", "p50", "p95", "p99", "max"], stages.map((s) => [s.stage, fmt(s.s.p50, 1), fmt(s.s.p95, 1), fmt(s.s.p99, 1), fmt(s.s.max, 1)])));
    out.push(
      `  batches while steady: ${Object.entries(batches3).map(([n, b]) => `${n} ${fmt(b.batches)} (${fmt(b.perBatch, 1)}/batch, one every ${fmt(b.medianGapMs)} ms (median))`).join(", ")}`,
    );
    out.push("");
    const cpuRows = (d: ReturnType<typeof cpuDelta>, perItems: number) => {
      const rows = Object.entries(d.perLabel).sort((a, b) => b[1].cpuSeconds - a[1].cpuSeconds);
      return [
        ...rows.map(([label, v]) => [label, v.cpuSeconds.toFixed(1), ((1000 * v.cpuSeconds) / perItems).toFixed(2), v.runQueueWaitSeconds.toFixed(1)]),
        ["all of the above (services, bench, broker, PostgreSQL)", d.oursCpuSeconds.toFixed(1), ((1000 * d.oursCpuSeconds) / perItems).toFixed(2), ""],
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
    if (warnList.length) out.push(`service log warnings/errors: ${warnList.map(([n, w]) => `${n} ${w.warn}/${w.error}${w.first ? ` ("${w.first}")` : ""}`).join("; ")}`);
    const rejoins = Object.entries(warnings).filter(([, w]) => w.groupJoins > 1);
    if (rejoins.length) {
      out.push(
        `consumer group re-joins (a batch outlasted CONSUMER_SESSION_TIMEOUT_MS, so the member was dropped and joined again): ${rejoins.map(([n, w]) => `${n} ${w.groupJoins - 1}`).join(", ")}`,
      );
    }
    out.push("checks: partner databases hold exactly the expected rows, feed chains contiguous, no sink alerts, nothing rejected, no service restarts");

    // ---- files ----
    const jsonFile = join(resultsDir, "pipeline.json");
    const svgFile = join(resultsDir, "pipeline-latency.svg");
    const svg = latencySvg({
      points,
      p50: perSecond.map((p) => ({ x: p.second + 0.5, y: p.p50 })),
      p99: perSecond.map((p) => ({ x: p.second + 0.5, y: p.p99 })),
      seconds: Math.max(args.seconds, ...points.map((p) => p.x)),
      title: `hashrelay end-to-end latency at ${args.rate} submissions/s (ingest HTTP → hotline-uk's database)`,
      subtitle: [
        `${started.toISOString().slice(0, 16).replace("T", " ")} UTC, ${fmt(steadyCount)} synthetic submissions over ${args.seconds} s, one request per ${args.tickMs} ms; ${cpus().length} CPUs, load average ${la(load3a)} → ${la(load3b)}`,
        `pipeline: p50 ${fmt(e2e.p50)} ms, p95 ${fmt(e2e.p95)} ms, p99 ${fmt(e2e.p99)} ms, max ${fmt(e2e.max)} ms;  raw kafkajs produce → consume at the same rate: p50 ${fmt(rawLatency.p50, 1)} ms, p99 ${fmt(rawLatency.p99, 1)} ms`,
      ],
    });
    writeFileSync(svgFile, svg);
    const report = {
      benchmark: "pipeline",
      date: started.toISOString(),
      node: process.version,
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? "unknown",
      totalMemoryBytes: totalmem(),
      loadAverage: { before: loadBefore, afterRaw: loadAfterRaw, bulk: { before: load2a, after: load2b }, steady: { before: load3a, after: load3b }, after: loadAfter },
      data: "random digests (md5, sha1, pdq) signed with a throw-away Ed25519 agency key (synthetic; no real hashes)",
      args,
      partners: policies,
      topicPartitions: { submitted: LOCAL_TOPIC_PLAN.partitions, canonical: LOCAL_TOPIC_PLAN.partitions, feeds: 3 },
      serviceSettings: { LOG_LEVEL: "info", CONSUMER_SESSION_TIMEOUT_MS: 6000, CONSUMER_MAX_BATCH_BYTES: "default (1048576)", DISTRIBUTION_EXPORT_INTERVAL_MS: 0, PARTNER_BOOTSTRAP: "none" },
      raw: {
        produce: { records: args.count, seconds: rawProduceSeconds, perSecond: rawProduce, batch: BATCH },
        consume: { records: bulkTotal, seconds: rawConsumeSeconds, perSecond: rawConsume },
        steady: { ...rawSteady, latencyMs: rawLatency },
      },
      pipeline: {
        warmupSubmissions: WARMUP,
        bulk: {
          submissions: args.count,
          publishSeconds,
          endToEndSeconds: e2eSeconds,
          lastPartnerRowSeconds: (lastRowAt - t2) / 1000,
          lastDedupTransactionSeconds: (lastDedupAt - t2) / 1000,
          submissionsPerSecond: pipelineRate,
          feedRecords: feedRecords2,
          feedRecordsPerSecond: feedRate,
          partnerRows: expectBulk,
          stageDoneSeconds: finish,
          samples,
          batchesFromLogs: batches2,
          cpu: cpu2,
        },
        steady: {
          ...steady,
          latencyMs: e2e,
          cumulativeMsFromSend: Object.fromEntries(stages.map((s) => [s.stage, s.s])),
          perSecond,
          lastRowAfterLastSendSeconds: (drainedAt - t3) / 1000 - steady.seconds,
          batchesFromLogs: batches3,
          cpu: cpu3,
        },
        serviceLogWarnings: warnings,
      },
      ratios,
      pids: Object.fromEntries(Object.entries(procs).map(([n, p]) => [n, p.child.pid])),
      files: { json: relative(REPO_ROOT, jsonFile), svg: relative(REPO_ROOT, svgFile), logs: Object.values(logFiles).map((f) => relative(REPO_ROOT, f)) },
    };
    writeFileSync(jsonFile, `${JSON.stringify(report, null, 2)}\n`);
    out.push(`wrote ${relative(REPO_ROOT, jsonFile)}, ${relative(REPO_ROOT, svgFile)}, service logs in ${relative(REPO_ROOT, logDir)}/`);
    process.stdout.write(`${out.join("\n")}\n`);
  } finally {
    log("  cleaning up: stopping services, dropping databases, deleting topics, ACLs and consumer groups...");
    await cleanup();
  }
}

if (process.argv[2] === "--janitor" && process.argv[3]) {
  void janitor(process.argv[3]);
} else {
  main().catch((err: unknown) => {
    process.stderr.write(`bench/pipeline: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  });
}
