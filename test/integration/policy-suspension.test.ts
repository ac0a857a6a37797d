/**
 * Suspending a partner's policy (offboarding, a suspected leak): through `bin/hashrelay policies
 * suspend` distribution stops issuing that partner's feed while the others go on; `policies resume`
 * sends exactly what changed meanwhile, on the same unbroken chain. Both are audited. And
 * `partners lag`: how far behind its feed each partner's sink is, and which lost records to retention.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { Kafka } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectedHoldings, partnerHoldings, reconcile } from "../../services/distribution/reconcile.ts";
import { listPolicies, loadPolicies } from "../../services/distribution/policy-store.ts";
import { AvroCodec } from "../../services/shared/wire/codec.ts";
import { REPO_ROOT } from "../../services/shared/config.ts";
import { createDurableProducer } from "../../services/shared/kafka.ts";
import type { RecordProducer } from "../../services/shared/kafka.ts";
import type { CanonicalRecord, Submission } from "../../services/shared/wire/records.ts";
import { signedSubmission } from "../support/agencies.ts";
import { randomHex } from "../support/fixtures.ts";
import { readTopic } from "../support/kafka.ts";
import { pipelineSettled, startPipeline } from "../support/pipeline.ts";
import type { Pipeline } from "../support/pipeline.ts";
import { waitFor } from "../support/processes.ts";
import { kafkaAs } from "../support/stack.ts";

const codec = new AvroCodec();
const run = promisify(execFile);
let kafka: Kafka;
let producer: RecordProducer;
let p: Pipeline;
const PARTNERS = ["hotline-uk", "industry-x"];

beforeAll(async () => {
  kafka = kafkaAs("test-suspension");
  producer = createDurableProducer(kafka);
  await producer.connect();
  p = await startPipeline({
    agencies: [{ id: "force-a" }],
    policies: PARTNERS.map((partnerId) => ({
      partnerId,
      categories: ["A", "B", "C"],
      minGradingStatus: "indicative",
      algorithms: ["md5"],
      scheme: "uk",
      extraFields: [],
      delivery: "kafka",
      feedPartitions: 2,
    })),
  });
});
afterAll(async () => {
  await p?.stop();
  await producer?.disconnect();
});

async function publish(count: number): Promise<void> {
  const force = p.agencies["force-a"];
  if (!force) throw new Error("no force-a");
  const subs: Submission[] = Array.from({ length: count }, () =>
    signedSubmission(force, { hashes: [{ alg: "md5", value: randomHex(16), quality: null }], grade: { uk: "B", ics: null, vics: null } }),
  );
  await producer.send({
    topic: p.names.submitted,
    acks: -1,
    messages: subs.map((s) => ({ key: `md5:${s.hashes[0]?.value}`, value: codec.encode("Submission", s) })),
  });
}

async function cli(args: string[]): Promise<string> {
  const env = { ...process.env, DATABASE_URL: p.hubDb.url, TOPIC_NAMESPACE: p.namespace };
  return (await run(`${REPO_ROOT}bin/hashrelay`, args, { env, timeout: 60_000 })).stdout;
}

async function canonicalRecords(): Promise<CanonicalRecord[]> {
  const { rows } = await p.hubDb.pool.query<{ body: Buffer }>("SELECT body FROM distributed_records");
  return rows.map((r) => codec.decode("CanonicalRecord", r.body).value);
}

async function holdings(partnerId: string): Promise<number> {
  const sink = p.sinks[partnerId];
  if (!sink) throw new Error(`no sink for ${partnerId}`);
  return (await partnerHoldings(sink.db.pool)).size;
}

/** Waits until the given partners hold exactly what their (active) policies imply. */
async function reconciled(partners: string[]): Promise<void> {
  await waitFor("pipeline settled", () => pipelineSettled(p, kafka, partners), 60_000, 300);
  await waitFor(
    "partners reconciled",
    async () => {
      const records = await canonicalRecords();
      for (const policy of (await loadPolicies(p.hubDb.pool)).filter((x) => partners.includes(x.partnerId))) {
        const sink = p.sinks[policy.partnerId];
        if (!sink) return false;
        if (!reconcile(expectedHoldings(policy, records), await partnerHoldings(sink.db.pool)).ok) return false;
      }
      return true;
    },
    60_000,
    300,
  );
}

describe("policy suspension", () => {
  it("stops one partner's feed, keeps the others flowing, and resumes with exactly what was missed", async () => {
    await publish(20);
    await reconciled(PARTNERS);
    expect(await holdings("industry-x")).toBe(20);

    const suspended = await cli([
      "policies",
      "suspend",
      "--partner",
      "industry-x",
      "--reason",
      "synthetic offboarding drill",
      "--actor",
      "alice",
    ]);
    expect(suspended).toContain("policy of industry-x suspended (version 2)");
    expect(await cli(["policies", "list"])).toMatch(/industry-x\tv2\t.*SUSPENDED since .*: synthetic offboarding drill/);
    await p.distribution.refreshPolicies(); // what the timer does every DISTRIBUTION_POLICY_REFRESH_MS
    const { rows: before } = await p.hubDb.pool.query<{ n: number }>(
      "SELECT coalesce(sum(last_seq), 0)::int AS n FROM feed_partitions WHERE partner_id = 'industry-x'",
    );

    await publish(15);
    await reconciled(["hotline-uk"]);
    expect(await holdings("hotline-uk")).toBe(35);
    // Nothing was issued to the suspended partner, so its sink still holds the first 20.
    const { rows: during } = await p.hubDb.pool.query<{ n: number }>(
      "SELECT coalesce(sum(last_seq), 0)::int AS n FROM feed_partitions WHERE partner_id = 'industry-x'",
    );
    expect(during[0]?.n).toBe(before[0]?.n);
    expect(await holdings("industry-x")).toBe(20);

    // Suspending twice, or resuming an active partner, is refused with a reason.
    await expect(cli(["policies", "suspend", "--partner", "industry-x", "--reason", "again"])).rejects.toThrow(
      /INVALID_FIELD: the policy of industry-x is already suspended/,
    );
    await expect(cli(["policies", "resume", "--partner", "hotline-uk"])).rejects.toThrow(
      /INVALID_FIELD: the policy of hotline-uk is not suspended/,
    );
    await expect(cli(["policies", "suspend", "--partner", "nobody", "--reason", "x"])).rejects.toThrow(
      /NOT_FOUND: partner nobody has no policy/,
    );

    expect(await cli(["policies", "resume", "--partner", "industry-x", "--actor", "bob"])).toContain(
      "policy of industry-x resumed (version 3)",
    );
    await p.distribution.refreshPolicies();
    await reconciled(PARTNERS);
    expect(await holdings("industry-x")).toBe(35);
    const alerts = await p.sinks["industry-x"]?.db.pool.query("SELECT reason FROM sink_alerts");
    expect(alerts?.rows).toEqual([]); // the chain went on where it had stopped: no gap, no break
    expect((await listPolicies(p.hubDb.pool)).map((l) => [l.policy.partnerId, l.suspension])).toEqual([
      ["hotline-uk", null],
      ["industry-x", null],
    ]);

    const events = (
      await readTopic(
        kafkaAs("test-suspension-audit"),
        p.names.audit,
        (ms) => ms.some((m) => m.key === "industry-x" && codec.decode("AuditEvent", m.value).value.action === "policy.resumed"),
        30_000,
      )
    )
      .map((m) => codec.decode("AuditEvent", m.value).value)
      .filter((e) => e.service === "admin");
    expect(events.map((e) => [e.actor, e.action, e.subjectId, e.detail["reason"] ?? ""])).toEqual([
      ["alice", "policy.suspended", "industry-x", "synthetic offboarding drill"],
      ["bob", "policy.resumed", "industry-x", ""],
    ]);
  }, 180_000);
});

describe("partner feed lag", () => {
  it("shows a stopped sink falling behind, and one whose unread records retention deleted (exit 2)", async () => {
    await reconciled(PARTNERS);
    // The sinks commit their Kafka offsets just after each applied batch.
    await waitFor(
      "both partners caught up",
      async () => /^hotline-uk\tok\tlag 0\t.*\nindustry-x\tok\tlag 0\t/.test(await cli(["partners", "lag"])),
      30_000,
      500,
    );

    await p.sinks["industry-x"]?.sink.stop();
    await publish(6);
    await reconciled(["hotline-uk"]);
    const feed = p.names.feed("industry-x");
    const admin = kafka.admin();
    await admin.connect();
    try {
      // hotline-uk's Kafka offsets follow its database within a second (KAFKA_COMMIT_INTERVAL_MS).
      await waitFor(
        "industry-x's feed to grow while hotline-uk keeps up",
        async () => /^hotline-uk\tok\tlag 0\t.*\nindustry-x\tbehind\tlag 6\t/.test(await cli(["partners", "lag"])),
        30_000,
        500,
      );
      // Retention passes the stopped partner: everything it has not read is deleted.
      const ends = await admin.fetchTopicOffsets(feed);
      await admin.deleteTopicRecords({ topic: feed, partitions: ends.map((e) => ({ partition: e.partition, offset: e.high })) });
    } finally {
      await admin.disconnect();
    }
    const lost = await cli(["partners", "lag"]).then(
      () => null,
      (err: { code?: number; stdout?: string; stderr?: string }) => err,
    );
    expect(lost?.code).toBe(2);
    expect(lost?.stdout).toMatch(/hotline-uk\tok\tlag 0/);
    expect(lost?.stdout).toMatch(/industry-x\tLOST\tlag 6\t.*lost/);
    expect(lost?.stderr).toContain("1 partner(s) fell behind the feed's retention");
  }, 120_000);
});
