/**
 * `make demo`: the main job end to end on the local stack. Registers synthetic agencies and
 * partners, provisions the namespace's topics and ACLs, starts every service as its own process
 * and its own Kafka principal, pushes a synthetic workload through HTTP and an S3 bulk import
 * (VICS file via the force CLI), waits for it to propagate, and prints what reached each partner,
 * the rejections by reason, and end-to-end latency.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { createWriteStream, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { ADMIN_MIGRATIONS } from "../services/admin/audit-outbox.ts";
import { registerAgency, registerPartner } from "../services/admin/registry.ts";
import { DISTRIBUTION_MIGRATIONS } from "../services/distribution/main.ts";
import type { PartnerPolicy } from "../services/distribution/policy.ts";
import { loadPolicies, setPolicy } from "../services/distribution/policy-store.ts";
import { expectedHoldings, partnerHoldings, reconcile } from "../services/distribution/reconcile.ts";
import { IngestClient } from "../services/force-cli/client.ts";
import type { AgencySigner } from "../services/force-cli/client.ts";
import { submissionToJson } from "../services/shared/wire/submission-json.ts";
import { addToReceipt, emptyReceipt } from "../services/shared/wire/ingest-api.ts";
import { sinkConsumerGroup } from "../services/partner-sink/main.ts";
import { AvroCodec } from "../services/shared/wire/codec.ts";
import { REPO_ROOT, effectiveEnv, localPrincipalEnv } from "../services/shared/config.ts";
import { consumerCaughtUp } from "../services/shared/exactly-once-consumer.ts";
import { createKafka, kafkaConnection, provisionTopics } from "../services/shared/kafka.ts";
import type { KafkaConnectionSettings, KafkaCredentials } from "../services/shared/kafka.ts";
import { ADMIN_PRINCIPAL, accessPlan, applyAccessPlan, consumerGroups } from "../services/shared/kafka-access.ts";
import { PgKeyRegistry } from "../services/shared/key-registry.ts";
import { SHARED_MIGRATIONS, createPool, migrate } from "../services/shared/postgres.ts";
import type { Pool } from "../services/shared/postgres.ts";
import type { Hash } from "../services/shared/wire/records.ts";
import { deriveKeyId, generateSigningKeyPair, privateKeyFromPem } from "../services/shared/wire/signing.ts";
import { LOCAL_TOPIC_PLAN, coreTopicSpecs, topicNames } from "../services/shared/topics.ts";
import { overlappingSubmissions, sign, syntheticImages, syntheticVicsFile } from "./workload.ts";

const IMAGES = Number(process.env["DEMO_IMAGES"] ?? 400);
const env = effectiveEnv();
const stamp = new Date().toISOString().replace(/\D/g, "").slice(0, 14);
const namespace = `demo-${stamp}`;
const workDir = join(REPO_ROOT, ".stack", "demo", stamp);
const codec = new AvroCodec();
const step = (msg: string) => console.log(`\n▶ ${msg}`);
const info = (msg: string) => console.log(`  ${msg}`);

function need(name: string): string {
  const v = env[name];
  if (!v) throw new Error(`${name} is not set: run \`make up\` first (make demo does)`);
  return v;
}

async function createDatabase(name: string): Promise<string> {
  const base = new URL(need("DATABASE_URL"));
  const c = new pg.Client({ connectionString: base.toString() });
  await c.connect();
  await c.query(`CREATE DATABASE ${name}`);
  await c.end();
  base.pathname = `/${name}`;
  return base.toString();
}

/**
 * The hub admin's Kafka credentials on the local stack (`make up` writes them). Only the demo's own
 * client uses them; the services pick their own principals' credentials, so none are passed on.
 */
/** Where the local broker is and how to reach it (TLS with the stack's own CA), without credentials. */
function brokerSettings(): KafkaConnectionSettings {
  const caFile = env["KAFKA_SSL_CA_FILE"];
  return { KAFKA_BROKERS: need("KAFKA_BROKERS").split(","), KAFKA_SSL: env["KAFKA_SSL"] === "true" ? "true" : "false", ...(caFile ? { KAFKA_SSL_CA_FILE: caFile } : {}) };
}

function adminCredentials(): { KAFKA_SASL_MECHANISM?: KafkaCredentials["mechanism"]; KAFKA_SASL_USERNAME: string; KAFKA_SASL_PASSWORD: string } {
  const creds = localPrincipalEnv(ADMIN_PRINCIPAL);
  const password = creds["KAFKA_SASL_PASSWORD"];
  if (!password) throw new Error(`no Kafka credentials for ${ADMIN_PRINCIPAL}: run \`make up\` first (make demo does)`);
  const mechanism = env["KAFKA_SASL_MECHANISM"] as KafkaCredentials["mechanism"] | undefined;
  return { ...(mechanism ? { KAFKA_SASL_MECHANISM: mechanism } : {}), KAFKA_SASL_USERNAME: ADMIN_PRINCIPAL, KAFKA_SASL_PASSWORD: password };
}

function withoutKafkaCredentials(source: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { KAFKA_SASL_USERNAME: _user, KAFKA_SASL_PASSWORD: _password, ...rest } = source;
  return rest;
}

const children: { name: string; child: ChildProcess }[] = [];

function startService(name: string, service: string, extra: Record<string, string>): void {
  const log = createWriteStream(join(workDir, `${name}.log`));
  const child = spawn(process.execPath, ["--import", "tsx", `${REPO_ROOT}services/${service}/main.ts`], {
    // One process per service (no tsx wrapper), so kill -9 reaches the service itself.
    cwd: REPO_ROOT,
    // Each service finds its own principal's credentials (services/shared/config.ts effectiveEnv);
    // credentials in the demo's own environment must not make them all run as one principal.
    env: { ...withoutKafkaCredentials(process.env), ...serviceEnv, ...extra },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  child.on("exit", (code, signal) => {
    if (!stopping) console.error(`  ! ${name} exited (${code ?? signal}); see ${join(workDir, `${name}.log`)}`);
  });
  children.push({ name, child });
  info(`started ${name} (pid ${child.pid}, log ${join(".stack", "demo", stamp, `${name}.log`)})`);
}

let stopping = false;
async function stopServices(): Promise<void> {
  stopping = true;
  await Promise.all(
    children.map(
      ({ child }) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const t = setTimeout(() => child.kill("SIGKILL"), 15_000);
          child.once("exit", () => {
            clearTimeout(t);
            resolve();
          });
          child.kill("SIGTERM");
        }),
    ),
  );
}

let serviceEnv: Record<string, string> = {};

async function waitUntil(what: string, probe: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const start = Date.now();
  let dots = 0;
  while (!(await probe().catch(() => false))) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    if (++dots % 10 === 0) process.stdout.write(".");
    await new Promise((r) => setTimeout(r, 300));
  }
  if (dots >= 10) process.stdout.write("\n");
  info(`${what} (${((Date.now() - start) / 1000).toFixed(1)} s)`);
}


function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

async function main(): Promise<void> {
  mkdirSync(join(workDir, "keys"), { recursive: true });
  console.log(`hashrelay demo ${stamp}: synthetic data only (random digests), namespace ${namespace}`);

  step("Creating the hub database and the partners' own databases");
  const hubUrl = await createDatabase(`demo_hub_${stamp}`);
  const partnerUrls: Record<string, string> = {
    "hotline-uk": await createDatabase(`demo_hotline_uk_${stamp}`),
    "industry-x": await createDatabase(`demo_industry_x_${stamp}`),
  };
  const hub = createPool(hubUrl, { max: 4, applicationName: "hashrelay-demo" });
  await migrate(hub, [
    { namespace: "shared", dir: SHARED_MIGRATIONS },
    ADMIN_MIGRATIONS,
    { namespace: "distribution", dir: DISTRIBUTION_MIGRATIONS },
  ]);
  info(`hub ${hubUrl.replace(/\/\/[^@]*@/, "//")}`);

  step("Registering agencies (three forces and the NCA as grading authority) with fresh Ed25519 keys");
  const registry = new PgKeyRegistry(hub, 0);
  const signers: Record<string, AgencySigner> = {};
  const agencies = [
    { id: "met-police", name: "Synthetic Metropolitan force", kind: "force" as const },
    { id: "west-midlands", name: "Synthetic West Midlands force", kind: "force" as const },
    { id: "greater-manchester", name: "Synthetic Greater Manchester force", kind: "force" as const },
    { id: "nca", name: "Synthetic National Crime Agency", kind: "nca" as const },
  ];
  for (const a of agencies) {
    await registerAgency(hub, { agencyId: a.id, name: a.name, kind: a.kind, gradingAuthority: a.id === "nca" });
    const pair = generateSigningKeyPair();
    const keyId = deriveKeyId(a.id, pair.publicKey);
    await registry.registerKey({ keyId, ownerKind: "agency", ownerId: a.id, publicKey: pair.publicKey, validFrom: new Date(Date.now() - 60_000), validUntil: null });
    const keyFile = join(workDir, "keys", `${a.id}.pem`);
    writeFileSync(keyFile, pair.privateKeyPem, { mode: 0o600 });
    signers[a.id] = { agencyId: a.id, keyId, privateKey: privateKeyFromPem(pair.privateKeyPem) };
    info(`${a.id}: key ${keyId}`);
  }
  const hubPair = generateSigningKeyPair();
  const hubKeyId = deriveKeyId("hub", hubPair.publicKey);
  await registry.registerKey({ keyId: hubKeyId, ownerKind: "hub", ownerId: "hub", publicKey: hubPair.publicKey, validFrom: new Date(Date.now() - 60_000), validUntil: null });
  const hubKeyFile = join(workDir, "keys", "hub.pem");
  writeFileSync(hubKeyFile, hubPair.privateKeyPem, { mode: 0o600 });
  info(`hub: key ${hubKeyId}`);

  step("Registering partners and their policies");
  const policies: Omit<PartnerPolicy, "version">[] = [
    { partnerId: "hotline-uk", categories: ["A", "B", "C"], minGradingStatus: "indicative", algorithms: ["md5", "sha1"], scheme: "uk", extraFields: [], delivery: "kafka", feedPartitions: 3 },
    { partnerId: "industry-x", categories: ["A", "B"], minGradingStatus: "confirmed", algorithms: ["md5", "pdq"], scheme: "ics", extraFields: ["gradingStatus"], delivery: "kafka", feedPartitions: 3 },
    { partnerId: "taskforce", categories: ["A", "B", "C"], minGradingStatus: "indicative", algorithms: ["md5", "sha1", "sha256"], scheme: "ics", extraFields: [], delivery: "s3", feedPartitions: 1 },
  ];
  for (const p of policies) {
    await registerPartner(hub, { partnerId: p.partnerId, name: `Synthetic ${p.partnerId}` });
    await setPolicy(hub, p);
    info(`${p.partnerId}: ${p.categories.join("/")} >= ${p.minGradingStatus}, ${p.scheme} scheme, ${p.algorithms.join("+")}, via ${p.delivery}`);
  }

  step("Provisioning topics and their ACLs");
  // The demo itself acts as the hub's operator (the admin principal, a super user): it provisions
  // topics and ACLs and watches the consumers. Every service runs as its own principal.
  const kafka = createKafka({ ...kafkaConnection({ ...brokerSettings(), ...adminCredentials() }), clientId: "hashrelay-demo" });
  const names = topicNames(namespace);
  const admin = kafka.admin();
  await admin.connect();
  await provisionTopics(admin, coreTopicSpecs(LOCAL_TOPIC_PLAN, names));
  // What `bin/hashrelay access apply` grants in this namespace: the hub services, and the partners
  // (their local principals come with `make up`); the agencies submit over HTTP, not to Kafka.
  const kafkaPartners = policies.filter((p) => p.delivery === "kafka").map((p) => p.partnerId);
  const grants = await applyAccessPlan(admin, accessPlan({ names, namespace, partners: kafkaPartners, agencies: [] }));
  await admin.disconnect();
  info(`${names.submitted}, ${names.rejected}, ${names.canonical} (compacted), ${names.audit}; feed topics come with distribution`);
  info(`${grants} ACLs: ingest, dedup and distribution to their topics, ${kafkaPartners.join(" and ")} each to its own feed`);

  step("Starting services: ingest, dedup, distribution, two partner sinks");
  serviceEnv = {
    KAFKA_BROKERS: need("KAFKA_BROKERS"),
    DATABASE_URL: hubUrl,
    TOPIC_NAMESPACE: namespace,
    LOG_LEVEL: "info",
    S3_ENDPOINT: need("S3_ENDPOINT"),
    S3_REGION: env["S3_REGION"] ?? "us-east-1",
    S3_ACCESS_KEY_ID: need("S3_ACCESS_KEY_ID"),
    S3_SECRET_ACCESS_KEY: need("S3_SECRET_ACCESS_KEY"),
    S3_BUCKET: need("S3_BUCKET"),
  };
  const ingestPort = process.env["DEMO_INGEST_PORT"] ?? "18080";
  startService("ingest", "ingest", { INGEST_PORT: ingestPort });
  startService("dedup", "dedup", {});
  startService("distribution", "distribution", {
    HUB_KEY_ID: hubKeyId,
    HUB_SIGNING_KEY_FILE: hubKeyFile,
    DISTRIBUTION_PSEUDONYM_SECRET: `demo-${stamp}-pseudonym-secret`,
    DISTRIBUTION_EXPORT_INTERVAL_MS: "0",
    DISTRIBUTION_POLICY_REFRESH_MS: "2000",
  });
  const sinkUrls: Record<string, string> = {};
  let port = 18090;
  for (const partnerId of Object.keys(partnerUrls)) {
    sinkUrls[partnerId] = `http://127.0.0.1:${port}`;
    startService(`sink-${partnerId}`, "partner-sink", {
      PARTNER_ID: partnerId,
      PARTNER_DATABASE_URL: partnerUrls[partnerId] as string,
      HUB_PUBLIC_KEYS: `${hubKeyId}=${hubPair.publicKey.toString("base64")}`,
      PARTNER_HTTP_PORT: String(port++),
    });
  }
  const ingestUrl = `http://127.0.0.1:${ingestPort}`;
  await waitUntil("ingest is ready", async () => (await fetch(`${ingestUrl}/readyz`)).ok, 90_000);
  await waitUntil("partner sinks are up", async () => {
    for (const u of Object.values(sinkUrls)) if (!(await fetch(`${u}/healthz`)).ok) return false;
    return true;
  }, 90_000);

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
      for (const s of batch) for (const h of s.hashes) if (!firstSubmitted.has(`${h.alg}:${h.value}`)) firstSubmitted.set(`${h.alg}:${h.value}`, sentAt);
      addToReceipt(receipt, (await client.submit(batch)).items);
    }
    info(`${agency.agencyId}: ${mine.length} submissions sent`);
  }

  step("Submitting bad records (each must be rejected with a reason and kept on the DLQ)");
  const met = signers["met-police"] as AgencySigner;
  const metClient = new IngestClient(ingestUrl, met);
  const tampered = { ...sign(met, { hashes: images[1]?.hashes ?? [], grade: { uk: "C", ics: null, vics: null } }), gradingStatus: "confirmed" as const };
  const asOther = sign(signers["west-midlands"] as AgencySigner, { hashes: [{ alg: "md5", value: "0".repeat(32), quality: null }], grade: { uk: "B", ics: null, vics: null } });
  const badHash = { ...submissionToJson(sign(met, { hashes: [{ alg: "md5", value: "f".repeat(32), quality: null }], grade: { uk: "A", ics: null, vics: null } })), hashes: [{ alg: "md5", value: "not-hex" }] };
  addToReceipt(receipt, (await metClient.submitRaw(Buffer.from(JSON.stringify([submissionToJson(tampered), submissionToJson(asOther), badHash])))).items);
  addToReceipt(receipt, (await metClient.submitRaw(Buffer.from("{ this is not json"))).items);
  info("tampered signature, submission as another agency, malformed hash, malformed JSON");

  step("A force retracts a hash it had asserted");
  const retracted = images.find((_, i) => i % 3 === 0 && i % 5 !== 0) as { hashes: Hash[] };
  const retractions = submissions.filter((s) => s.hashes.some((h) => h.value === retracted.hashes[0]?.value));
  for (const s of retractions) {
    const signer = signers[s.agencyId] as AgencySigner;
    addToReceipt(receipt, (await new IngestClient(ingestUrl, signer).submit([sign(signer, { op: "RETRACT", hashes: [retracted.hashes[0] as Hash], grade: s.grade, submittedAt: Date.now() + 1 })])).items);
  }
  info(`md5 ${retracted.hashes[0]?.value.slice(0, 12)}… retracted by every force that held it`);

  step("A force uploads a VICS export through S3 with the force CLI (sign, upload, import, receipt)");
  const vicsFile = join(workDir, "greater-manchester-export.vics.json");
  writeFileSync(vicsFile, syntheticVicsFile(200));
  const cliOut = await new Promise<string>((resolve, reject) => {
    const cli = spawn(`${REPO_ROOT}bin/hashrelay-ingest`, ["upload", vicsFile, "--format", "vics", "--agency", "greater-manchester", "--key-id", (signers["greater-manchester"] as AgencySigner).keyId, "--key", join(workDir, "keys", "greater-manchester.pem"), "--url", ingestUrl], {
      env: { ...process.env, ...serviceEnv },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    cli.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    cli.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`force CLI exited ${code}: ${out}`))));
  });
  for (const line of cliOut.trim().split("\n")) info(`| ${line}`);
  const importAccepted = Number(/accepted:\s+(\d+)/.exec(cliOut)?.[1] ?? 0);
  const importRejected = Number(/rejected:\s+(\d+)/.exec(cliOut)?.[1] ?? 0);

  step("Waiting for everything to propagate to the partners");
  const partnerPools = Object.fromEntries(Object.entries(partnerUrls).map(([id, url]) => [id, createPool(url, { max: 2 })]));
  await waitUntil("dedup, distribution and both sinks have consumed everything", async () => {
    const { rows } = await hub.query<{ n: string }>("SELECT ((SELECT count(*) FROM outbox) + (SELECT count(*) FROM feed_outbox))::text AS n");
    if (Number(rows[0]?.n) > 0) return false;
    if (!(await consumerCaughtUp(kafka, hub, consumerGroups(namespace).dedup, names.submitted))) return false;
    if (!(await consumerCaughtUp(kafka, hub, consumerGroups(namespace).distribution, names.canonical))) return false;
    for (const [id, pool] of Object.entries(partnerPools)) if (!(await consumerCaughtUp(kafka, pool, sinkConsumerGroup(id, namespace), names.feed(id)))) return false;
    const again = await hub.query<{ n: string }>("SELECT ((SELECT count(*) FROM outbox) + (SELECT count(*) FROM feed_outbox))::text AS n");
    return Number(again.rows[0]?.n) === 0;
  }, 180_000);

  step("Exporting the taskforce bundle (ICS scheme) to S3");
  // The running distribution exports on its timer in production; here one export is asked for directly.
  const { exportSnapshot } = await import("../services/distribution/exports.ts");
  const { createS3Client } = await import("../services/shared/s3.ts");
  const bundle = await exportSnapshot(
    { pool: hub, s3: createS3Client({ S3_ENDPOINT: serviceEnv["S3_ENDPOINT"], S3_REGION: serviceEnv["S3_REGION"] as string, S3_ACCESS_KEY_ID: serviceEnv["S3_ACCESS_KEY_ID"] as string, S3_SECRET_ACCESS_KEY: serviceEnv["S3_SECRET_ACCESS_KEY"] as string }), bucket: serviceEnv["S3_BUCKET"] as string, hub: { keyId: hubKeyId, privateKey: privateKeyFromPem(hubPair.privateKeyPem), pseudonymSecret: `demo-${stamp}-pseudonym-secret` }, prefix: `${namespace}/feeds` },
    "taskforce",
  );

  // ---- summary ----
  const stats = async (sql: string, params: unknown[] = [], pool: Pool = hub) => Number((await pool.query<{ n: string }>(sql, params)).rows[0]?.n ?? 0);
  const canonical = await stats("SELECT count(*)::text AS n FROM canonical_records WHERE NOT deleted");
  const merged = await stats("SELECT count(*)::text AS n FROM canonical_records WHERE merged_into IS NOT NULL");
  const withdrawn = await stats("SELECT count(*)::text AS n FROM canonical_records WHERE deleted AND merged_into IS NULL");
  const allPolicies = await loadPolicies(hub);
  const records = (await hub.query<{ body: Buffer }>("SELECT body FROM distributed_records")).rows.map((r) => codec.decode("CanonicalRecord", r.body).value);
  const statusCounts = new Map<string, number>();
  for (const r of records) if (!r.deleted) statusCounts.set(r.gradingStatus, (statusCounts.get(r.gradingStatus) ?? 0) + 1);

  console.log("\n══════════════════════════ hashrelay demo summary ══════════════════════════");
  console.log(`submitted over HTTP:      ${receipt.accepted + receipt.duplicates + receipt.rejected} (accepted ${receipt.accepted}, duplicates ${receipt.duplicates}, rejected ${receipt.rejected})`);
  for (const [reason, n] of Object.entries(receipt.byReason)) console.log(`  rejected ${reason}: ${n}`);
  const dlq = new Map<string, number>();
  const { readTopicOnce } = await import("./dlq.ts");
  for (const r of await readTopicOnce(kafka, names.rejected)) dlq.set(`${r.service}/${r.reason}`, (dlq.get(`${r.service}/${r.reason}`) ?? 0) + 1);
  console.log(`dead-letter topic:        ${[...dlq].map(([k, n]) => `${k} ${n}`).join(", ") || "empty"} (original bytes kept)`);
  console.log(`VICS via S3 import:       accepted ${importAccepted}, rejected ${importRejected}`);
  console.log(`canonical records:        ${canonical} live (${[...statusCounts].map(([s, n]) => `${s} ${n}`).join(", ")}), ${merged} merged away, ${withdrawn} withdrawn`);
  let allChecksPassed = true;
  for (const policy of allPolicies.filter((p) => p.delivery !== "s3")) {
    const pool = partnerPools[policy.partnerId] as Pool;
    const live = await stats("SELECT count(*)::text AS n FROM partner_hashes WHERE NOT removed", [], pool);
    const removed = await stats("SELECT count(*)::text AS n FROM partner_hashes WHERE removed", [], pool);
    const alerts = await stats("SELECT count(*)::text AS n FROM sink_alerts", [], pool);
    const report = reconcile(expectedHoldings(policy, records), await partnerHoldings(pool));
    allChecksPassed &&= report.ok;
    console.log(`partner ${policy.partnerId.padEnd(12)} rows ${live}, removals ${removed}, alerts ${alerts}; reconciliation ${report.ok ? "OK" : `FAILED (missing ${report.missing.length}, unexpected ${report.unexpected.length}, wrong category ${report.wrongCategory.length})`}`);
  }
  // The broker's side of minimisation: one partner's credentials reach its feed and nothing else.
  const { probePartnerAccess } = await import("./access-check.ts");
  const probes = await probePartnerAccess(brokerSettings(), "hotline-uk", [names.feed("hotline-uk"), names.feed("industry-x"), names.canonical]);
  const own = probes[0]?.outcome === "readable";
  const othersRefused = probes.slice(1).every((p) => p.outcome !== "readable");
  allChecksPassed &&= own && othersRefused;
  const transport = brokerSettings().KAFKA_SSL === "true" ? "over TLS, " : "";
  console.log(`Kafka access:             partner-hotline-uk (${transport}SCRAM) ${probes.map((p) => `${p.topic.slice(namespace.length + 1)} ${p.outcome}`).join("; ")}`);
  const unmappable = await stats("SELECT coalesce(sum(count), 0)::text AS n FROM unmappable_counts WHERE partner_id = 'taskforce'");
  console.log(`taskforce bundle:         s3://${serviceEnv["S3_BUCKET"]}/${bundle.object} (${bundle.count} hashes, ICS; ${unmappable} records unmappable to ICS left out)`);
  console.log(`                          signed manifest s3://${serviceEnv["S3_BUCKET"]}/${bundle.object}.manifest.json`);
  const hotline = partnerPools["hotline-uk"] as Pool;
  const { rows: arrivals } = await hotline.query<{ alg: string; value: string; at: Date }>("SELECT alg, value, updated_at AS at FROM partner_hashes");
  const latencies = arrivals
    .map((r) => {
      const sent = firstSubmitted.get(`${r.alg}:${r.value}`);
      return sent === undefined ? null : r.at.getTime() - sent;
    })
    .filter((x): x is number => x !== null && x >= 0)
    .sort((a, b) => a - b);
  console.log(`end-to-end latency:       p50 ${percentile(latencies, 50)} ms, p99 ${percentile(latencies, 99)} ms (force HTTP submission to row in hotline-uk's database, ${latencies.length} hashes; includes queueing behind the whole burst)`);
  console.log(`logs and keys:            ${workDir}`);
  console.log("════════════════════════════════════════════════════════════════════════════");
  for (const pool of Object.values(partnerPools)) await pool.end();
  await hub.end();
  if (!allChecksPassed) process.exitCode = 1;
}

main()
  .catch((err: unknown) => {
    console.error(`\ndemo failed: ${(err as Error).message}`);
    process.exitCode = 1;
  })
  .finally(async () => {
    if (children.length) {
      step("Stopping services");
      await stopServices();
    }
  });
