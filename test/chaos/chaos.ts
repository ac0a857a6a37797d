/**
 * The chaos run (`make chaos MINUTES=10`): the whole pipeline on a stack of its own (three Kafka
 * brokers, its own PostgreSQL and S3), two instances of every consumer service, a steady stream of
 * signed synthetic submissions (HTTP and S3 imports, confirmations, conflicts, regrades, merges,
 * retractions, policy changes, bad records) while a seeded schedule kills service instances, kills
 * and restarts brokers (the controller and partition leaders among them), restarts PostgreSQL and
 * pauses partner databases; then it waits for quiescence and reconciles from outside
 * (reconcile.ts). It prints the schedule, the faults survived and the counts, and exits 1 on any
 * difference. `--soak` runs the same stream without faults and plots memory and lag
 * (bench-results/chaos-soak-<stamp>.svg); `--short` is the fault pass's version.
 */
import { appendFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { consumerCaughtUp } from "../../services/shared/exactly-once-consumer.ts";
import { consumerGroups } from "../../services/shared/kafka-access.ts";
import { localStackEnv } from "../../services/shared/config.ts";
import { createS3Client } from "../../services/shared/s3.ts";
import { sinkConsumerGroup } from "../../services/partner-sink/main.ts";
import { freePort } from "../../bench/pipeline/util.ts";
import type { ChaosArgs } from "./args.ts";
import { parseChaosArgs, stackPorts } from "./args.ts";
import { runFaults } from "./faults.ts";
import type { FaultOutcome } from "./faults.ts";
import { Fleet } from "./fleet.ts";
import { AUTHORITY, FORCES, instanceSpecs, setUpHub } from "./hub.ts";
import type { ChaosHub } from "./hub.ts";
import { reconcileRun } from "./reconcile.ts";
import type { Reconciliation } from "./reconcile.ts";
import { memoryChanges, startSampling } from "./samples.ts";
import type { Sample, Stage } from "./samples.ts";
import { planSchedule, seededRandom } from "./schedule.ts";
import { openChaosStack } from "./stack.ts";
import type { ChaosStack } from "./stack.ts";
import { emptyLedger, runTraffic } from "./traffic.ts";
import type { Ledger } from "./traffic.ts";
import { Workload } from "./workload.ts";
import { printReport, writeSoakResults } from "./report.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface ChaosResult {
  readonly passed: boolean;
  readonly reconciliation: Reconciliation | null;
  readonly outcomes: FaultOutcome[];
  readonly ledger: Ledger;
  readonly problems: string[];
}

/** Runs it; every line of progress and of the report goes to `print` and to report.txt in the run's folder. */
export async function runChaos(a: ChaosArgs, print: (line: string) => void = (line) => console.log(line)): Promise<ChaosResult> {
  const stamp = new Date().toISOString().replace(/\D/g, "").slice(0, 14);
  const runDir = join(a.stackDir, "runs", stamp);
  mkdirSync(runDir, { recursive: true });
  // The report is kept beside the instances' logs: a passing short run's goes nowhere else.
  const report = join(runDir, "report.txt");
  const log = (line: string) => {
    print(line);
    appendFileSync(report, `${line}\n`);
  };
  log(
    `hashrelay chaos ${stamp}: ${a.profile === "none" ? "soak, no faults" : `${a.profile} fault schedule`}, ${a.minutes} min, seed ${a.seed}`,
  );
  log(`  logs of every service instance in ${runDir}`);
  const shared = a.sharedPostgres ? { env: localStackEnv() } : undefined;
  const stack = await openChaosStack({
    dir: a.stackDir,
    brokers: a.brokers,
    ports: stackPorts(a.portBase),
    log,
    ...(shared ? { external: shared } : {}),
  });
  const fleet = new Fleet(runDir);
  // Interrupted: the services and the stack are this run's own, so they go with it.
  const interrupted = (signal: NodeJS.Signals) => {
    log(`\n${signal}: stopping the service instances${a.keep ? "" : " and the chaos stack"}`);
    void fleet
      .stopAll()
      .then(() => (a.keep ? undefined : stackDown(stack, log)))
      .finally(() => process.exit(130));
  };
  process.once("SIGINT", interrupted);
  process.once("SIGTERM", interrupted);
  const problems: string[] = [];
  let hub: ChaosHub | null = null;
  let passed = false;
  try {
    hub = await setUpHub(stack, stamp);
    const h = hub;
    const ingestPort = await freePort();
    for (const spec of instanceSpecs(stack, h, { instances: a.instances, ingestPort })) fleet.add(spec);
    log(`  namespace ${h.namespace}; starting ${fleet.names().join(", ")}`);
    fleet.startAll();
    const ingestUrl = `http://127.0.0.1:${ingestPort}`;
    await until("ingest is ready", async () => (await fetch(`${ingestUrl}/readyz`)).ok, 180_000);

    const rnd = seededRandom(a.seed);
    const durationMs = a.minutes * 60_000;
    const schedule = planSchedule({
      seed: a.seed,
      durationMs,
      instances: fleet.names(),
      partners: Object.keys(h.partners),
      profile: a.profile,
      pgRestarts: stack.ownsPostgres,
      brokers: a.brokers,
    });
    const admin = h.kafka.admin();
    await admin.connect();
    const producer = h.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const stages: Stage[] = [
      { name: "dedup", pool: h.hub, group: consumerGroups(h.namespace).dedup, topic: h.names.submitted },
      { name: "distribution", pool: h.hub, group: consumerGroups(h.namespace).distribution, topic: h.names.canonical },
      ...Object.entries(h.partners).map(([id, p]) => ({
        name: `sink ${id}`,
        pool: p.pool,
        group: sinkConsumerGroup(id, h.namespace),
        topic: h.names.feed(id),
      })),
    ];
    const ledger = emptyLedger();
    const workload = new Workload({ signers: h.signers, forces: FORCES, authority: AUTHORITY, rnd });
    const t0 = Date.now();
    const sampling = startSampling({ admin, stages, fleet, t0, everyMs: a.profile === "none" ? 10_000 : 5_000 });
    log(`\n▶ running for ${a.minutes} min: ${a.rate} submissions/s over HTTP, S3 imports, ${schedule.length} faults scheduled`);
    const faults = runFaults(
      {
        stack,
        fleet,
        leaderTopics: [h.names.canonical, h.names.submitted],
        partnerDbUrls: Object.fromEntries(Object.entries(h.partners).map(([id, p]) => [id, p.url])),
        admin,
        rnd,
        log,
      },
      schedule,
      t0,
    );
    const s3 = createS3Client({
      S3_ENDPOINT: stack.env["S3_ENDPOINT"],
      S3_REGION: stack.env["S3_REGION"] ?? "us-east-1",
      S3_ACCESS_KEY_ID: stack.env["S3_ACCESS_KEY_ID"] as string,
      S3_SECRET_ACCESS_KEY: stack.env["S3_SECRET_ACCESS_KEY"] as string,
    });
    await runTraffic(
      {
        ingestUrl,
        signers: h.signers,
        workload,
        ledger,
        hub: h.hub,
        s3,
        bucket: stack.env["S3_BUCKET"] as string,
        namespace: h.namespace,
        producer,
        submittedTopic: h.names.submitted,
        policies: h.policies,
        perSecond: a.rate,
        giveUpMs: 300_000,
        log,
      },
      () => Date.now() - t0 >= durationMs,
    );
    log(`  traffic stopped after ${((Date.now() - t0) / 1000).toFixed(0)} s; waiting for the last faults to be undone`);
    const outcomes = await faults;
    for (const o of outcomes) if (o.error) problems.push(`fault at ${(o.event.at / 1000).toFixed(0)} s failed: ${o.error}`);

    log("\n▶ quiescence: everything running, then every stage caught up and every outbox empty");
    for (const name of fleet.names()) fleet.start(name);
    await stack.up();
    const tQuiet = Date.now();
    const settled = await until("the pipeline settled", () => pipelineSettled(h, stages), 900_000).then(
      () => true,
      (err: Error) => {
        problems.push(err.message);
        return false;
      },
    );
    log(`  settled ${((Date.now() - tQuiet) / 1000).toFixed(0)} s after the last fault was undone`);
    await sampling.stop();
    if (!settled) for (const i of fleet.all()) log(`--- ${i.spec.name}\n${fleet.tail(i.spec.name)}`);

    log("\n▶ reconciling from outside: topics read to their ends, every database compared");
    const reconciliation = settled ? await reconcileRun(h, ledger, h.kafka, { s3, bucket: stack.env["S3_BUCKET"] as string }) : null;
    const memory = memoryChanges(fleet, t0 + Math.min(durationMs * 0.2, 120_000), t0 + durationMs);
    passed = printReport({ args: a, schedule, outcomes, ledger, reconciliation, fleet, samples: sampling.samples, memory, problems, log });
    if (a.profile === "none") {
      const policyChangesS = ledger.policyChangedAt.map((at) => (at - t0) / 1000);
      writeSoakResults({ args: a, stamp, samples: sampling.samples, memory, durationMs, policyChangesS, log });
    }
    await producer.disconnect();
    await admin.disconnect();
    s3.destroy();
    return { passed, reconciliation, outcomes, ledger, problems };
  } finally {
    process.off("SIGINT", interrupted);
    process.off("SIGTERM", interrupted);
    await fleet.stopAll();
    if (hub && passed && !a.keep) await hub.drop().catch((err: unknown) => log(`  (could not drop the run's databases: ${String(err)})`));
    else if (hub) log(`  kept the run's databases and topics (namespace ${hub.namespace}) for inspection`);
    if (!a.keep) await stackDown(stack, log);
  }
}

async function stackDown(stack: ChaosStack, log: (line: string) => void): Promise<void> {
  await stack.down().catch((err: unknown) => log(`  ! stopping the chaos stack failed: ${String(err)}`));
}

/**
 * Outboxes empty and every stage's stored offsets at its topic's end, twice in a row a few seconds
 * apart. A halted feed partition never catches up by itself (a gap or a broken chain: an operator
 * must act), so it ends the wait at once.
 */
async function pipelineSettled(h: ChaosHub, stages: readonly Stage[]): Promise<boolean> {
  for (const [partnerId, p] of Object.entries(h.partners)) {
    const { rows } = await p.pool.query<{ partition: number; halted_reason: string }>(
      "SELECT partition, halted_reason FROM feed_state WHERE halted_reason IS NOT NULL",
    );
    if (rows.length) throw new HaltedFeed(`${partnerId} partition ${rows[0]?.partition} halted: ${rows[0]?.halted_reason}`);
  }
  for (let round = 0; round < 2; round++) {
    const { rows } = await h.hub.query<{ n: string }>(
      "SELECT ((SELECT count(*) FROM outbox) + (SELECT count(*) FROM feed_outbox) + (SELECT count(*) FROM admin_audit_outbox))::text AS n",
    );
    if (Number(rows[0]?.n) > 0) return false;
    for (const s of stages) if (!(await consumerCaughtUp(h.kafka, s.pool, s.group, s.topic))) return false;
    if (round === 0) await sleep(3_000);
  }
  return true;
}

class HaltedFeed extends Error {}

async function until(what: string, probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    try {
      if (await probe()) return;
    } catch (err) {
      if (err instanceof HaltedFeed) throw err;
      last = `: ${(err as Error).message}`;
    }
    await sleep(1_000);
  }
  throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${last}`);
}

export type { Sample };

if (import.meta.filename === process.argv[1]) {
  let args: ChaosArgs;
  try {
    args = parseChaosArgs(process.argv.slice(2));
  } catch (err) {
    console.error((err as Error).message);
    process.exit(2);
  }
  runChaos(args)
    .then((r) => {
      process.exitCode = r.passed ? 0 : 1;
    })
    .catch((err: unknown) => {
      console.error(`\nchaos run failed: ${(err as Error).stack ?? String(err)}`);
      process.exitCode = 1;
    })
    .finally(() => setTimeout(() => process.exit(), 1_000).unref());
}
