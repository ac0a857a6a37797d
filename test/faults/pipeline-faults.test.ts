/**
 * Fault injection over the whole pipeline, every service a real process: kill -9 ingest (while a
 * force submits over HTTP and retries), dedup, distribution and a partner sink mid-stream and
 * restart them; restart the Kafka broker; take a
 * partner's database away for a while; duplicate and reorder deliveries. Afterwards every partner
 * database must equal what its policy implies over the canonical records: nothing lost, nothing
 * duplicated, every feed chain contiguous.
 *
 * Runs on its own (`HASHRELAY_FAULTS=1 npx vitest run`, part of `make test`) because it restarts
 * the shared Kafka broker (the local process, or the container stack's broker container).
 */
import { localStackEnv } from "../../services/shared/config.ts";
import { consumerGroups } from "../../services/shared/kafka-access.ts";
import { sinkConsumerGroup } from "../../services/partner-sink/main.ts";
import { consumerCaughtUp } from "../../services/shared/exactly-once-consumer.ts";
import { readFileSync, readdirSync } from "node:fs";
import type { Kafka } from "kafkajs";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registerPartner } from "../../services/admin/registry.ts";
import { DISTRIBUTION_MIGRATIONS } from "../../services/distribution/main.ts";
import { loadPolicies, setPolicy } from "../../services/distribution/policy-store.ts";
import type { PartnerPolicy } from "../../services/distribution/policy.ts";
import { expectedHoldings, partnerHoldings, reconcile } from "../../services/distribution/reconcile.ts";
import { IngestClient } from "../../services/force-cli/client.ts";
import type { AgencySigner } from "../../services/force-cli/client.ts";
import { AvroCodec } from "../../services/shared/wire/codec.ts";
import { createDurableProducer } from "../../services/shared/kafka.ts";
import type { RecordProducer } from "../../services/shared/kafka.ts";
import { migrate } from "../../services/shared/postgres.ts";
import type { Hash, Submission } from "../../services/shared/wire/records.ts";
import type { TopicNames } from "../../services/shared/topics.ts";
import { registerTestAgency, signedSubmission } from "../support/agencies.ts";
import { randomHex } from "../support/fixtures.ts";
import { readTopic } from "../support/kafka.ts";
import { createHubKey } from "../support/pipeline.ts";
import { startServiceProcess, waitFor } from "../support/processes.ts";
import type { ServiceProcess } from "../support/processes.ts";
import { freshDatabase, freshTopics, kafkaAs, restartBroker, stackEnv } from "../support/stack.ts";
import type { TestDatabase } from "../support/stack.ts";
import { hotlinePolicy, industryPolicy } from "../../test/support/fixtures.ts";

const codec = new AvroCodec();
const PARTNERS = ["hotline-uk", "industry-x"];
let kafka: Kafka;
let producer: RecordProducer;
let hubDb: TestDatabase;
let names: TopicNames;
let namespace: string;
const partnerDbs: Record<string, TestDatabase> = {};
const procs: Record<string, ServiceProcess> = {};
/** Output of service processes already killed and replaced, for the log check at the end. */
const retiredOutput: string[] = [];
const procEnv: Record<string, Record<string, string>> = {};
let forces: AgencySigner[] = [];
const published: Submission[] = [];
const ingestPort = 20_000 + Math.floor(Math.random() * 10_000);

/** A force's client that retries until every submission is accepted or known (as a real one would). */
async function submitWithRetries(subs: Submission[]): Promise<void> {
  const client = new IngestClient(`http://127.0.0.1:${ingestPort}`, forces[0] as AgencySigner);
  for (let i = 0; i < subs.length; i += 50) {
    const batch = subs.slice(i, i + 50);
    await waitFor(
      "batch accepted by ingest",
      async () => {
        const res = await client.submit(batch);
        return res.items.every((it) => it.status === "accepted" || it.status === "duplicate");
      },
      90_000,
      300,
    );
    published.push(...batch);
  }
}

function start(name: string, service: string): void {
  procs[name] = startServiceProcess(service, procEnv[name] as Record<string, string>);
}

async function restart(name: string, service: string, signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
  await procs[name]?.kill(signal);
  retiredOutput.push(procs[name]?.output.join("") ?? "");
  start(name, service);
}

async function publish(subs: Submission[]): Promise<void> {
  for (let i = 0; i < subs.length; i += 200) {
    await producer.send({
      topic: names.submitted,
      acks: -1,
      messages: subs
        .slice(i, i + 200)
        .map((s) => ({ key: `${s.hashes[0]?.alg}:${s.hashes[0]?.value}`, value: codec.encode("Submission", s) })),
    });
  }
  published.push(...subs);
}

function wave(n: number): Submission[] {
  const out: Submission[] = [];
  for (let i = 0; i < n; i++) {
    const force = forces[i % forces.length] as AgencySigner;
    const md5: Hash = { alg: "md5", value: randomHex(16), quality: null };
    const grade = i % 4 === 0 ? { uk: "C" as const, ics: null, vics: null } : { uk: "A" as const, ics: "A2" as const, vics: null };
    out.push(signedSubmission(force, { hashes: [md5, { alg: "sha1", value: randomHex(20), quality: null }], grade }));
    // A second force confirms a third of them, which moves them into industry-x's feed.
    if (i % 3 === 0) out.push(signedSubmission(forces[(i + 1) % forces.length] as AgencySigner, { hashes: [md5], grade }));
  }
  return out;
}

async function settled(): Promise<boolean> {
  const { rows } = await hubDb.pool.query<{ n: string }>(
    "SELECT ((SELECT count(*) FROM outbox) + (SELECT count(*) FROM feed_outbox))::text AS n",
  );
  if (Number(rows[0]?.n) > 0) return false;
  if (!(await consumerCaughtUp(kafka, hubDb.pool, consumerGroups(namespace).dedup, names.submitted))) return false;
  if (!(await consumerCaughtUp(kafka, hubDb.pool, consumerGroups(namespace).distribution, names.canonical))) return false;
  for (const p of PARTNERS)
    if (!(await consumerCaughtUp(kafka, (partnerDbs[p] as TestDatabase).pool, sinkConsumerGroup(p, namespace), names.feed(p))))
      return false;
  const again = await hubDb.pool.query<{ n: string }>(
    "SELECT ((SELECT count(*) FROM outbox) + (SELECT count(*) FROM feed_outbox))::text AS n",
  );
  return Number(again.rows[0]?.n) === 0;
}

/** Where each stage stands, and the tail of each service's output: printed when the pipeline does not settle. */
async function diagnose(): Promise<string> {
  const lines: string[] = [];
  const admin = kafka.admin();
  await admin.connect();
  const stage = async (label: string, db: pg.Pool, group: string, topic: string) => {
    const ends = await admin.fetchTopicOffsets(topic);
    const { rows } = await db.query<{ partition: number; next_offset: string }>(
      "SELECT partition, next_offset::text FROM consumer_offsets WHERE consumer_group = $1 AND topic = $2",
      [group, topic],
    );
    lines.push(
      `${label}: high ${ends.map((e) => `${e.partition}:${e.high}`).join(" ")} | stored ${rows.map((r) => `${r.partition}:${r.next_offset}`).join(" ")}`,
    );
  };
  await stage("dedup", hubDb.pool, consumerGroups(namespace).dedup, names.submitted);
  await stage("distribution", hubDb.pool, consumerGroups(namespace).distribution, names.canonical);
  for (const p of PARTNERS) await stage(p, (partnerDbs[p] as TestDatabase).pool, sinkConsumerGroup(p, namespace), names.feed(p));
  await admin.disconnect();
  const { rows } = await hubDb.pool.query<{ o: string; f: string }>(
    "SELECT (SELECT count(*) FROM outbox)::text AS o, (SELECT count(*) FROM feed_outbox)::text AS f",
  );
  lines.push(`outbox ${rows[0]?.o} feed_outbox ${rows[0]?.f}`);
  for (const [name, proc] of Object.entries(procs))
    lines.push(
      `--- ${name} (exit ${proc.child.exitCode ?? proc.child.signalCode ?? "running"})`,
      proc.output.join("").split("\n").slice(-15).join("\n"),
    );
  return lines.join("\n");
}

const applied = async () =>
  Number((await hubDb.pool.query<{ n: string }>("SELECT count(*)::text AS n FROM applied_submissions")).rows[0]?.n ?? 0);

beforeAll(async () => {
  const env = stackEnv();
  kafka = kafkaAs("test-faults");
  producer = createDurableProducer(kafka);
  await producer.connect();
  hubDb = await freshDatabase("faults");
  ({ names, namespace } = await freshTopics(PARTNERS, 3));
  const hubKey = await createHubKey(hubDb);
  forces = [
    await registerTestAgency(hubDb.pool, "force-a"),
    await registerTestAgency(hubDb.pool, "force-b"),
    await registerTestAgency(hubDb.pool, "force-c"),
  ];
  await migrate(hubDb.pool, [{ namespace: "distribution", dir: DISTRIBUTION_MIGRATIONS }]);
  const policies: Omit<PartnerPolicy, "version">[] = [
    hotlinePolicy("hotline-uk"),
    industryPolicy("industry-x", { algorithms: ["md5"], extraFields: [], feedPartitions: 3 }),
  ];
  for (const p of policies) {
    await registerPartner(hubDb.pool, { partnerId: p.partnerId, name: p.partnerId });
    await setPolicy(hubDb.pool, p);
  }
  for (const p of PARTNERS) partnerDbs[p] = await freshDatabase("fpartner");
  const common = {
    KAFKA_BROKERS: env.brokers.join(","),
    DATABASE_URL: hubDb.url,
    TOPIC_NAMESPACE: namespace,
    LOG_LEVEL: "warn",
    CONSUMER_MAX_BATCH_BYTES: "16384", // many small transactions, so faults land inside them
    CONSUMER_SESSION_TIMEOUT_MS: "6000", // a killed member's partitions move on quickly
    S3_ENDPOINT: env.s3.endpoint,
    S3_REGION: env.s3.region,
    S3_ACCESS_KEY_ID: env.s3.accessKeyId,
    S3_SECRET_ACCESS_KEY: env.s3.secretAccessKey,
    S3_BUCKET: env.s3.bucket,
  };
  procEnv["dedup"] = { ...common };
  procEnv["distribution"] = {
    ...common,
    HUB_KEY_ID: hubKey.keyId,
    HUB_SIGNING_KEY_FILE: hubKey.file,
    DISTRIBUTION_PSEUDONYM_SECRET: "faults-pseudonym-secret-0123456789",
    DISTRIBUTION_EXPORT_INTERVAL_MS: "0",
  };
  for (const p of PARTNERS) {
    procEnv[`sink-${p}`] = {
      ...common,
      PARTNER_ID: p,
      PARTNER_DATABASE_URL: (partnerDbs[p] as TestDatabase).url,
      HUB_PUBLIC_KEYS: `${hubKey.keyId}=${hubKey.publicKey.toString("base64")}`,
      PARTNER_BOOTSTRAP: "none",
    };
  }
  procEnv["ingest"] = { ...common, INGEST_PORT: String(ingestPort) };
  start("ingest", "ingest");
  start("dedup", "dedup");
  start("distribution", "distribution");
  for (const p of PARTNERS) start(`sink-${p}`, "partner-sink");
}, 180_000);

afterAll(async () => {
  for (const p of Object.values(procs)) await p.kill("SIGTERM").catch(() => undefined);
  await producer?.disconnect();
  for (const db of Object.values(partnerDbs)) await db.drop().catch(() => undefined);
  await hubDb?.drop();
});

describe("pipeline under faults", () => {
  it("recovers from kills, a broker restart, a partner database outage and duplicate/reordered deliveries", async (ctx) => {
    // Whatever step fails, the stages' positions and each service's log go to the test output.
    ctx.onTestFailed(async () => {
      console.error(await diagnose().catch((err: unknown) => `diagnose failed: ${String(err)}`));
    });
    // 0. kill -9 ingest while a force is submitting over HTTP; the force retries.
    const overHttp = wave(300).filter((sub) => sub.agencyId === "force-a");
    const sending = submitWithRetries(overHttp);
    await waitFor("ingest under way", async () => published.length >= 50, 90_000, 20);
    await restart("ingest", "ingest");
    await sending;

    // 1. kill -9 dedup mid-stream.
    await publish(wave(300));
    await waitFor("dedup under way", async () => (await applied()) > 50, 90_000, 20);
    await restart("dedup", "dedup");

    // 2. kill -9 distribution mid-stream.
    await publish(wave(300));
    await waitFor(
      "distribution under way",
      async () => Number((await hubDb.pool.query("SELECT count(*) AS n FROM distributed_records")).rows[0]?.n) > 100,
      90_000,
      20,
    );
    await restart("distribution", "distribution");

    // 3. kill -9 a partner sink mid-stream.
    await publish(wave(300));
    const hotline = partnerDbs["hotline-uk"] as TestDatabase;
    await waitFor(
      "sink under way",
      async () => Number((await hotline.pool.query("SELECT count(*) AS n FROM feed_applied")).rows[0]?.n) > 100,
      90_000,
      20,
    );
    await restart("sink-hotline-uk", "partner-sink");

    // 4. Restart the Kafka broker while records flow.
    await publish(wave(200));
    await restartBroker();

    // 5. Take the industry partner's database away for a while.
    const industry = partnerDbs["industry-x"] as TestDatabase;
    const dbName = new URL(industry.url).pathname.slice(1);
    const admin = new pg.Client({ connectionString: stackEnv().databaseUrl });
    await admin.connect();
    await publish(wave(200));
    await admin.query(`ALTER DATABASE ${dbName} ALLOW_CONNECTIONS false`);
    await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", [dbName]);
    await new Promise((r) => setTimeout(r, 6_000));
    await admin.query(`ALTER DATABASE ${dbName} ALLOW_CONNECTIONS true`);
    await admin.end();

    // 6. Duplicate and reordered deliveries: re-publish earlier submissions, and replay feed records out of order.
    await publish(published.slice(0, 50).reverse());
    const feed = await readTopic(kafka, names.feed("hotline-uk"), (ms) => ms.length >= 100, 60_000);
    await producer.send({
      topic: names.feed("hotline-uk"),
      acks: -1,
      messages: feed
        .slice(0, 100)
        .reverse()
        .map((m) => ({ partition: m.partition, key: m.key, value: m.value })),
    });

    await waitFor("pipeline settled", settled, 150_000, 500);

    // Nothing lost, nothing duplicated.
    const unique = new Set(published.map((s) => s.submissionId)).size;
    expect(await applied()).toBe(unique);
    const records = (await hubDb.pool.query<{ body: Buffer }>("SELECT body FROM distributed_records")).rows.map(
      (r) => codec.decode("CanonicalRecord", r.body).value,
    );
    for (const policy of await loadPolicies(hubDb.pool)) {
      const db = partnerDbs[policy.partnerId] as TestDatabase;
      const report = reconcile(expectedHoldings(policy, records), await partnerHoldings(db.pool));
      expect({
        partner: policy.partnerId,
        missing: report.missing.length,
        unexpected: report.unexpected.length,
        wrongCategory: report.wrongCategory.length,
      }).toEqual({
        partner: policy.partnerId,
        missing: 0,
        unexpected: 0,
        wrongCategory: 0,
      });
      expect(report.expected).toBeGreaterThan(50);
      // Every chain applied contiguously from 1, no alerts (replayed records were recognised as duplicates).
      const { rows } = await db.pool.query<{ partition: number; n: string; max: string }>(
        "SELECT partition, count(*)::text AS n, max(seq)::text AS max FROM feed_applied GROUP BY partition",
      );
      for (const r of rows) expect(r.n).toBe(r.max);
      const alerts = await db.pool.query("SELECT reason FROM sink_alerts");
      expect(alerts.rows).toEqual([]);
    }
  }, 600_000);

  it("leaves no secret and no law-enforcement-only value in any service's log", () => {
    // Every service ran at warn through kills, a broker restart and a database outage: the logs
    // that matter most, with errors and retries. None may carry a credential or case data.
    const logs = [...retiredOutput, ...Object.values(procs).map((p) => p.output.join(""))].join("\n");
    expect(logs).toContain('"service"'); // pino lines were captured, so the check below has something to look at
    const dir = localStackEnv()["KAFKA_PRINCIPALS_DIR"] as string;
    const kafkaPasswords = readdirSync(dir).map((f) => readFileSync(`${dir}/${f}`, "utf8").trim());
    const secrets = [
      ...kafkaPasswords,
      stackEnv().s3.secretAccessKey,
      "PRIVATE KEY",
      "faults-pseudonym-secret",
      "SYN-CASE-0001",
      "grader-7",
    ];
    for (const secret of secrets) expect(logs.includes(secret), `a service log contains ${secret.slice(0, 4)}...`).toBe(false);
  });
});
