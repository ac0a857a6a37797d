/**
 * Benchmark: the whole hashrelay pipeline beside a bare kafkajs produce/consume, in one run against
 * the real local stack (`make up`). Synthetic data only: random digests signed with throw-away keys.
 *
 *   node bench/pipeline.ts [--count 10000] [--rate 200] [--seconds 30] [--tick-ms 50] [--idle-seconds 0] [--profile]
 *   node bench/pipeline.ts --import [--count 1000000] [--profile]
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
 * Three measurements (four with --idle-seconds N: first, with no traffic at all, each process's CPU
 * over N seconds a minute after the services started, as a share of one core):
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
 *
 * --import runs another mode instead, for a large load through the S3 bulk import
 * (bench/pipeline/import.ts): the same set-up, services and warm-up, then --count (1,000,000 unless
 * given) signed submissions uploaded as one JSON Lines object and imported, timed per stage until
 * both partner databases hold them, with each service's resident memory sampled from /proc (peak
 * and over time), the same checks, a table beside the targets and bench-results/pipeline-import.json.
 *
 * This file is the entry point and runs the phases in order; each phase is a module in
 * bench/pipeline/ (bench/run.sh runs only bench/*.ts, so those are not benchmarks of their own).
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { IngestClient } from "../services/force-cli/client.ts";
import { AvroCodec } from "../services/shared/wire/codec.ts";
import { REPO_ROOT } from "../services/shared/config.ts";
import { createDurableProducer } from "../services/shared/kafka.ts";
import { LOCAL_PARTNERS, stackEnv, uniqueName } from "../test/support/stack.ts";
import { parseArgs } from "./pipeline/args.ts";
import { bulkPhase, warmUp } from "./pipeline/bulk.ts";
import { PARTNERS, WARMUP } from "./pipeline/context.ts";
import type { Bench } from "./pipeline/context.ts";
import { idlePhase } from "./pipeline/idle.ts";
import { importPhase } from "./pipeline/import.ts";
import { importReportLines, writeImportResults } from "./pipeline/import-report.ts";
import { adminKafka, janitor } from "./pipeline/janitor.ts";
import { memorySampler } from "./pipeline/memory.ts";
import { cpuSampler } from "./pipeline/proc.ts";
import { rawBaseline } from "./pipeline/raw.ts";
import { computeFigures, logFigures } from "./pipeline/figures.ts";
import { reportLines } from "./pipeline/report.ts";
import { writeResults } from "./pipeline/results.ts";
import { trackRun } from "./pipeline/resources.ts";
import { pipelineProbes, startServices } from "./pipeline/services.ts";
import { setUp } from "./pipeline/setup.ts";
import { readStageTimes, steadyPhase } from "./pipeline/steady.ts";
import { fmt, log, waitUntil } from "./pipeline/util.ts";
import { verify } from "./pipeline/verify.ts";
import { encodeItems, makeItems, sum } from "./pipeline/workload.ts";

/** The run's arguments, namespace, clients and resource record; starts the janitor. */
function prepare(): Bench {
  const args = parseArgs(process.argv.slice(2));
  // Service processes inherit this environment and find their own principals' credentials only
  // when it names none (this script's client takes the admin's from the local stack, not from here).
  delete process.env["KAFKA_SASL_USERNAME"];
  delete process.env["KAFKA_SASL_PASSWORD"];
  const steadyCount = args.import ? 0 : Math.round(args.rate * args.seconds);
  const env = stackEnv();
  const codec = new AvroCodec();
  const started = new Date();
  const loadBefore = loadavg();
  const run = randomBytes(3).toString("hex");
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
  const res = trackRun({ env, namespace, admin, producer });
  return { args, steadyCount, env, codec, run, namespace, started, loadBefore, resultsDir, logDir, kafka, admin, producer, res };
}

/** The raw baseline, then the pipeline's throughput (bulk) and latency (steady). */
async function throughputAndLatency(b: Bench): Promise<void> {
  const { args, steadyCount } = b;
  log(
    `bench/pipeline: N=${fmt(args.count)}, steady ${args.rate}/s for ${args.seconds} s ` +
      `(${fmt(steadyCount)} submissions, one request per ${args.tickMs} ms), load average ${b.loadBefore.map((l) => l.toFixed(2)).join(" ")}`,
  );
  const setup = await setUp(b);
  const raw = await rawBaseline(b, setup);
  const servicesStartedAt = Date.now();
  const services = await startServices(b, setup);

  // sign the pipeline's workloads while the services start
  log(`  signing ${fmt(WARMUP + args.count + steadyCount)} submissions for the pipeline while they start...`);
  const warmItems = makeItems(setup.signer, WARMUP, "warm");
  const bulkItems = makeItems(setup.signer, args.count, "bulk");
  const bulkMessages = encodeItems(b.codec, bulkItems);
  const steadyItems = makeItems(setup.signer, steadyCount, "steady");
  const { client, probes, cpuSnapshot } = await pipelineReady(b, setup, services);

  const idle = args.idleSeconds > 0 ? await idlePhase(args.idleSeconds, servicesStartedAt, cpuSnapshot) : null;
  await warmUp(client, probes, warmItems);
  const bulk = await bulkPhase(b, setup, probes, cpuSnapshot, bulkItems, bulkMessages);
  const steady = await steadyPhase(b, client, probes, cpuSnapshot, steadyItems, bulk);
  const times = await readStageTimes(b, setup, steadyItems);
  await verify(b, setup, probes, steady.expectSteady, times.partnerAt);

  const measured = { raw, bulk, steady, times, idle };
  const figures = computeFigures(b, measured);
  const fromLogs = await logFigures(b, services, measured);
  const loadAfter = loadavg();
  const out = reportLines(b, measured, figures, fromLogs);
  out.push(writeResults(b, setup, services, measured, figures, fromLogs, loadAfter));
  process.stdout.write(`${out.join("\n")}\n`);
}

/** The ingest client, the pipeline's probes and the CPU sampler, once ingest answers /readyz. */
async function pipelineReady(
  b: Bench,
  setup: Awaited<ReturnType<typeof setUp>>,
  services: Awaited<ReturnType<typeof startServices>>,
): Promise<{ client: IngestClient; probes: ReturnType<typeof pipelineProbes>; cpuSnapshot: ReturnType<typeof cpuSampler> }> {
  const client = new IngestClient(services.ingestUrl, setup.signer);
  const probes = pipelineProbes(b, setup);
  const cpuSnapshot = cpuSampler(
    b.res.procs,
    setup.hubDb.pool,
    b.res.dbs.map((d) => new URL(d.url).pathname.slice(1)),
  );
  await waitUntil("ingest /readyz", async () => (await fetch(`${services.ingestUrl}/readyz`)).ok, 120_000, 300, probes.diagnose);
  return { client, probes, cpuSnapshot };
}

/** --import: the warm-up, then --count submissions through one S3 bulk import, with memory sampled throughout. */
async function importMode(b: Bench): Promise<void> {
  log(`bench/pipeline --import: N=${fmt(b.args.count)}, load average ${b.loadBefore.map((l) => l.toFixed(2)).join(" ")}`);
  const setup = await setUp(b);
  const services = await startServices(b, setup);
  const memory = memorySampler(b.res.procs);
  try {
    const warmItems = makeItems(setup.signer, WARMUP, "warm");
    const { client, probes, cpuSnapshot } = await pipelineReady(b, setup, services);
    await warmUp(client, probes, warmItems);
    const loadStart = loadavg();
    const result = await importPhase(b, setup, client, probes, cpuSnapshot);
    const loadEnd = loadavg();
    memory.stop();
    const expectAll = {
      hotline: sum(warmItems, (i) => i.hotlineRows) + result.expect.hotline,
      industry: sum(warmItems, (i) => i.industryRows) + result.expect.industry,
    };
    await verify(b, setup, probes, expectAll, new Float64Array(0));
    const loadAfter = loadavg();
    const out = importReportLines(b, result, memory, [loadStart, loadEnd], loadAfter);
    out.push(writeImportResults(b, setup, services, result, memory, [loadStart, loadEnd], loadAfter));
    process.stdout.write(`${out.join("\n")}\n`);
  } finally {
    memory.stop();
  }
}

async function main(): Promise<void> {
  const b = prepare();
  try {
    await b.admin.connect();
    await (b.args.import ? importMode(b) : throughputAndLatency(b));
  } finally {
    log("  cleaning up: stopping services, dropping databases, deleting topics, ACLs and consumer groups...");
    await b.res.cleanup();
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
