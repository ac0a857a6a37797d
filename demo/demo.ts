/**
 * `make demo`: the main job end to end on the local stack. Registers synthetic agencies and
 * partners, provisions the namespace's topics and ACLs, starts every service as its own process
 * and its own Kafka principal, pushes a synthetic workload through HTTP and an S3 bulk import
 * (VICS file via the force CLI), waits for it to propagate, has the partners answer back with
 * signed feedback and the grading authority resolve their false-positive reports (feedback.ts), and
 * prints what reached each partner, the rejections by reason, the review outcomes, end-to-end
 * latency, and what the local Prometheus saw of it all.
 * Each step is a function below, run in order by main; the hub's set-up is in setup.ts, the
 * service processes in services.ts, Prometheus in prometheus.ts, the closing summary in summary.ts.
 */
import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Kafka } from "kafkajs";
import { IngestClient } from "../services/force-cli/client.ts";
import type { AgencySigner } from "../services/force-cli/client.ts";
import { submissionToJson } from "../services/shared/wire/submission-json.ts";
import { addToReceipt, emptyReceipt } from "../services/shared/wire/ingest-api.ts";
import type { Receipt } from "../services/shared/wire/ingest-api.ts";
import { sinkConsumerGroup } from "../services/partner-sink/main.ts";
import { REPO_ROOT } from "../services/shared/config.ts";
import { consumerCaughtUp } from "../services/shared/exactly-once-consumer.ts";
import { consumerGroups } from "../services/shared/kafka-access.ts";
import { createPool } from "../services/shared/postgres.ts";
import type { Pool } from "../services/shared/postgres.ts";
import type { Hash, Submission } from "../services/shared/wire/records.ts";
import { privateKeyFromPem } from "../services/shared/wire/signing.ts";
import { IMAGES, env, info, names, namespace, need, pseudonymSecret, stamp, step, waitUntil, workDir } from "./context.ts";
import { children, serviceEnv, startService, stopServices } from "./services.ts";
import { createDatabases, provisionKafka, registerAgencies, registerPartners } from "./setup.ts";
import type { Databases, Keys } from "./setup.ts";
import { FEEDBACK_PARTNERS, feedbackLoop, registerFeedbackKeys } from "./feedback.ts";
import type { FeedbackKey } from "./feedback.ts";
import { printSummary } from "./summary.ts";
import { monitoringReport, unwatchServices, watchServices } from "./prometheus.ts";
import type { DemoTarget, Monitoring, MonitoringReport } from "./prometheus.ts";
import { overlappingSubmissions, sign, syntheticImages, syntheticVicsFile } from "./workload.ts";
import type { SyntheticImage } from "./workload.ts";

/** Where dedup and distribution serve /metrics, /healthz and /readyz in the demo. */
const DEDUP_METRICS_PORT = 18101;
const DISTRIBUTION_METRICS_PORT = 18102;

/**
 * Starts every service as its own process and waits until each one is ready; returns ingest's URL,
 * each partner sink's URL and every service's /metrics address.
 */
async function startAllServices(
  dbs: Databases,
  keys: Keys,
  feedbackKeys: Record<string, FeedbackKey>,
): Promise<{ ingestUrl: string; sinkUrls: Record<string, string>; targets: DemoTarget[] }> {
  step("Starting services: ingest, dedup, distribution, two partner sinks");
  Object.assign(serviceEnv, {
    KAFKA_BROKERS: need("KAFKA_BROKERS"),
    DATABASE_URL: dbs.hubUrl,
    TOPIC_NAMESPACE: namespace,
    LOG_LEVEL: "info",
    S3_ENDPOINT: need("S3_ENDPOINT"),
    S3_REGION: env["S3_REGION"] ?? "us-east-1",
    S3_ACCESS_KEY_ID: need("S3_ACCESS_KEY_ID"),
    S3_SECRET_ACCESS_KEY: need("S3_SECRET_ACCESS_KEY"),
    S3_BUCKET: need("S3_BUCKET"),
  });
  const ingestPort = process.env["DEMO_INGEST_PORT"] ?? "18080";
  startService("ingest", "ingest", { INGEST_PORT: ingestPort });
  startService("dedup", "dedup", { DEDUP_METRICS_PORT: String(DEDUP_METRICS_PORT) });
  startService("distribution", "distribution", {
    HUB_KEY_ID: keys.hubKeyId,
    HUB_SIGNING_KEY_FILE: keys.hubKeyFile,
    DISTRIBUTION_PSEUDONYM_SECRET: pseudonymSecret,
    DISTRIBUTION_EXPORT_INTERVAL_MS: "0",
    DISTRIBUTION_POLICY_REFRESH_MS: "2000",
    DISTRIBUTION_METRICS_PORT: String(DISTRIBUTION_METRICS_PORT),
  });
  const sinkUrls: Record<string, string> = {};
  let port = 18090;
  for (const partnerId of Object.keys(dbs.partnerUrls)) {
    sinkUrls[partnerId] = `http://127.0.0.1:${port}`;
    startService(`sink-${partnerId}`, "partner-sink", {
      PARTNER_ID: partnerId,
      PARTNER_DATABASE_URL: dbs.partnerUrls[partnerId] as string,
      HUB_PUBLIC_KEYS: `${keys.hubKeyId}=${keys.hubPair.publicKey.toString("base64")}`,
      PARTNER_HTTP_PORT: String(port++),
      ...(FEEDBACK_PARTNERS.includes(partnerId)
        ? {
            PARTNER_FEEDBACK_KEY_ID: feedbackKeys[partnerId]?.keyId as string,
            PARTNER_FEEDBACK_KEY_FILE: feedbackKeys[partnerId]?.file as string,
          }
        : {}),
    });
  }
  const ingestUrl = `http://127.0.0.1:${ingestPort}`;
  const targets: DemoTarget[] = [
    { service: "ingest", url: ingestUrl },
    { service: "dedup", url: `http://127.0.0.1:${DEDUP_METRICS_PORT}` },
    { service: "distribution", url: `http://127.0.0.1:${DISTRIBUTION_METRICS_PORT}` },
    ...Object.entries(sinkUrls).map(([partner, url]) => ({ service: "partner-sink", partner, url })),
  ];
  await waitUntil(
    "every service is ready (/readyz)",
    async () => {
      for (const t of targets) if (!(await fetch(`${t.url}/readyz`)).ok) return false;
      return true;
    },
    90_000,
  );
  return { ingestUrl, sinkUrls, targets };
}

interface Workload {
  images: SyntheticImage[];
  submissions: Submission[];
  receipt: Receipt;
  /** alg:value -> when it was first sent, for the end-to-end latency. */
  firstSubmitted: Map<string, number>;
}

async function submitWorkload(ingestUrl: string, signers: Record<string, AgencySigner>): Promise<Workload> {
  step(`Submitting a synthetic workload over HTTP (${IMAGES} images, overlapping forces)`);
  const forces = ["met-police", "west-midlands", "greater-manchester"].map((id) => signers[id] as AgencySigner);
  const nca = signers["nca"] as AgencySigner;
  const images = syntheticImages(IMAGES);
  const submissions = overlappingSubmissions(images, forces, nca);
  const receipt = emptyReceipt();
  const firstSubmitted = new Map<string, number>();
  for (const agency of [...forces, nca]) {
    const mine = submissions.filter((s) => s.agencyId === agency.agencyId);
    const client = new IngestClient(ingestUrl, agency);
    for (let i = 0; i < mine.length; i += 250) {
      const batch = mine.slice(i, i + 250);
      const sentAt = Date.now();
      for (const s of batch)
        for (const h of s.hashes) if (!firstSubmitted.has(`${h.alg}:${h.value}`)) firstSubmitted.set(`${h.alg}:${h.value}`, sentAt);
      addToReceipt(receipt, (await client.submit(batch)).items);
    }
    info(`${agency.agencyId}: ${mine.length} submissions sent`);
  }
  return { images, submissions, receipt, firstSubmitted };
}

async function submitBadRecords(ingestUrl: string, signers: Record<string, AgencySigner>, w: Workload): Promise<void> {
  step("Submitting bad records (each must be rejected with a reason and kept on the DLQ)");
  const met = signers["met-police"] as AgencySigner;
  const metClient = new IngestClient(ingestUrl, met);
  const tampered = {
    ...sign(met, { hashes: w.images[1]?.hashes ?? [], grade: { uk: "C", ics: null, vics: null } }),
    gradingStatus: "confirmed" as const,
  };
  const asOther = sign(signers["west-midlands"] as AgencySigner, {
    hashes: [{ alg: "md5", value: "0".repeat(32), quality: null }],
    grade: { uk: "B", ics: null, vics: null },
  });
  const badHash = {
    ...submissionToJson(
      sign(met, { hashes: [{ alg: "md5", value: "f".repeat(32), quality: null }], grade: { uk: "A", ics: null, vics: null } }),
    ),
    hashes: [{ alg: "md5", value: "not-hex" }],
  };
  addToReceipt(
    w.receipt,
    (await metClient.submitRaw(Buffer.from(JSON.stringify([submissionToJson(tampered), submissionToJson(asOther), badHash])))).items,
  );
  addToReceipt(w.receipt, (await metClient.submitRaw(Buffer.from("{ this is not json"))).items);
  info("tampered signature, submission as another agency, malformed hash, malformed JSON");
}

async function retractOneHash(ingestUrl: string, signers: Record<string, AgencySigner>, w: Workload): Promise<void> {
  step("A force retracts a hash it had asserted");
  const retracted = w.images.find((_, i) => i % 3 === 0 && i % 5 !== 0) as { hashes: Hash[] };
  const retractions = w.submissions.filter((s) => s.hashes.some((h) => h.value === retracted.hashes[0]?.value));
  for (const s of retractions) {
    const signer = signers[s.agencyId] as AgencySigner;
    addToReceipt(
      w.receipt,
      (
        await new IngestClient(ingestUrl, signer).submit([
          sign(signer, { op: "RETRACT", hashes: [retracted.hashes[0] as Hash], grade: s.grade, submittedAt: Date.now() + 1 }),
        ])
      ).items,
    );
  }
  info(`md5 ${retracted.hashes[0]?.value.slice(0, 12)}… retracted by every force that held it`);
}

/** Runs the force CLI on a synthetic VICS file; returns what its receipt says was accepted and rejected. */
async function uploadVicsExport(ingestUrl: string, signers: Record<string, AgencySigner>): Promise<{ accepted: number; rejected: number }> {
  step("A force uploads a VICS export through S3 with the force CLI (sign, upload, import, receipt)");
  const vicsFile = join(workDir, "greater-manchester-export.vics.json");
  writeFileSync(vicsFile, syntheticVicsFile(200));
  const cliArgs = [
    "upload",
    vicsFile,
    "--format",
    "vics",
    "--agency",
    "greater-manchester",
    "--key-id",
    (signers["greater-manchester"] as AgencySigner).keyId,
    "--key",
    join(workDir, "keys", "greater-manchester.pem"),
    "--url",
    ingestUrl,
  ];
  const cliOut = await new Promise<string>((resolve, reject) => {
    const cli = spawn(`${REPO_ROOT}bin/hashrelay-ingest`, cliArgs, {
      env: { ...process.env, ...serviceEnv },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    cli.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    cli.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`force CLI exited ${code}: ${out}`))));
  });
  for (const line of cliOut.trim().split("\n")) info(`| ${line}`);
  const accepted = Number(/accepted:\s+(\d+)/.exec(cliOut)?.[1] ?? 0);
  const rejected = Number(/rejected:\s+(\d+)/.exec(cliOut)?.[1] ?? 0);
  return { accepted, rejected };
}

/** Waits until dedup, distribution and both sinks have consumed everything; returns a pool per partner database. */
async function awaitPropagation(kafka: Kafka, dbs: Databases): Promise<Record<string, Pool>> {
  step("Waiting for everything to propagate to the partners");
  const { hub } = dbs;
  const partnerPools = Object.fromEntries(Object.entries(dbs.partnerUrls).map(([id, url]) => [id, createPool(url, { max: 2 })]));
  await waitUntil(
    "dedup, distribution and both sinks have consumed everything",
    async () => {
      const { rows } = await hub.query<{ n: string }>(
        "SELECT ((SELECT count(*) FROM outbox) + (SELECT count(*) FROM feed_outbox))::text AS n",
      );
      if (Number(rows[0]?.n) > 0) return false;
      if (!(await consumerCaughtUp(kafka, hub, consumerGroups(namespace).dedup, names.submitted))) return false;
      if (!(await consumerCaughtUp(kafka, hub, consumerGroups(namespace).distribution, names.canonical))) return false;
      for (const [id, pool] of Object.entries(partnerPools)) {
        if (!(await consumerCaughtUp(kafka, pool, sinkConsumerGroup(id, namespace), names.feed(id)))) return false;
      }
      const again = await hub.query<{ n: string }>(
        "SELECT ((SELECT count(*) FROM outbox) + (SELECT count(*) FROM feed_outbox))::text AS n",
      );
      return Number(again.rows[0]?.n) === 0;
    },
    180_000,
  );
  return partnerPools;
}

async function exportTaskforceBundle(hub: Pool, keys: Keys): Promise<{ object: string; count: number }> {
  step("Exporting the taskforce bundle (ICS scheme) to S3");
  // The running distribution exports on its timer in production; here one export is asked for directly.
  const { exportSnapshot } = await import("../services/distribution/exports.ts");
  const { createS3Client } = await import("../services/shared/s3.ts");
  const s3 = createS3Client({
    S3_ENDPOINT: serviceEnv["S3_ENDPOINT"],
    S3_REGION: serviceEnv["S3_REGION"] as string,
    S3_ACCESS_KEY_ID: serviceEnv["S3_ACCESS_KEY_ID"] as string,
    S3_SECRET_ACCESS_KEY: serviceEnv["S3_SECRET_ACCESS_KEY"] as string,
  });
  return exportSnapshot(
    {
      pool: hub,
      s3,
      bucket: serviceEnv["S3_BUCKET"] as string,
      hub: { keyId: keys.hubKeyId, privateKey: privateKeyFromPem(keys.hubPair.privateKeyPem), pseudonymSecret },
      prefix: `${namespace}/feeds`,
    },
    "taskforce",
  );
}

let monitoring: Monitoring | null = null;

/** Once everything has propagated: what the local Prometheus saw (null when none runs). */
async function readMonitoring(): Promise<MonitoringReport | null> {
  if (!monitoring) return null;
  step("Reading the local Prometheus: targets and alerts");
  return monitoringReport(monitoring, Date.now());
}

async function main(): Promise<void> {
  mkdirSync(join(workDir, "keys"), { recursive: true });
  console.log(`hashrelay demo ${stamp}: synthetic data only (random digests), namespace ${namespace}`);
  const dbs = await createDatabases();
  const keys = await registerAgencies(dbs.hub);
  const policies = await registerPartners(dbs.hub);
  const feedbackKeys = await registerFeedbackKeys(dbs.hub);
  const kafka = await provisionKafka(policies);
  const { ingestUrl, sinkUrls, targets } = await startAllServices(dbs, keys, feedbackKeys);
  monitoring = await watchServices(targets);
  const workload = await submitWorkload(ingestUrl, keys.signers);
  await submitBadRecords(ingestUrl, keys.signers, workload);
  await retractOneHash(ingestUrl, keys.signers, workload);
  const imported = await uploadVicsExport(ingestUrl, keys.signers);
  let partnerPools = await awaitPropagation(kafka, dbs);
  const feedback = await feedbackLoop({
    hub: dbs.hub,
    kafka,
    ingestUrl,
    signers: keys.signers,
    partnerPools,
    partnerUrls: dbs.partnerUrls,
    sinkUrls,
    feedbackKeys,
  });
  for (const pool of Object.values(partnerPools)) await pool.end();
  partnerPools = await awaitPropagation(kafka, dbs);
  const bundle = await exportTaskforceBundle(dbs.hub, keys);
  const report = await readMonitoring();
  const allChecksPassed = await printSummary({
    hub: dbs.hub,
    kafka,
    partnerPools,
    workload,
    imported,
    bundle,
    feedback,
    monitoring: report,
  });
  for (const pool of Object.values(partnerPools)) await pool.end();
  await dbs.hub.end();
  if (!allChecksPassed) process.exitCode = 1;
}

main()
  .catch((err: unknown) => {
    console.error(`\ndemo failed: ${(err as Error).message}`);
    process.exitCode = 1;
  })
  .finally(async () => {
    unwatchServices(monitoring);
    if (children.length) {
      step("Stopping services");
      await stopServices();
    }
  });
