/**
 * Distribution's disclosure log on the real stack: every feed record issued to a partner, over
 * Kafka or S3, has exactly one audit.v1 event at the same partner, partition and seq naming the
 * hub's record behind the partner's pseudonym; a policy change is audited as policy.applied and
 * its removals carry it as their cause. Nothing law-enforcement-only reaches the audit topic.
 */
import type { Kafka } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DISTRIBUTION_ACTOR } from "../../services/distribution/audit.ts";
import { recordRef } from "../../services/distribution/feed-writer.ts";
import { setPolicy } from "../../services/distribution/policy-store.ts";
import type { PartnerPolicy } from "../../services/distribution/policy.ts";
import { LAW_ENFORCEMENT_ONLY_FIELDS } from "../../services/shared/audit.ts";
import { expandAuditEvent } from "../../services/shared/audit.ts";
import { AvroCodec } from "../../services/shared/wire/codec.ts";
import { createDurableProducer } from "../../services/shared/kafka.ts";
import type { RecordProducer } from "../../services/shared/kafka.ts";
import type { AuditEvent, FeedRecord, Hash, Submission } from "../../services/shared/wire/records.ts";
import { signedSubmission } from "../support/agencies.ts";
import { randomHex } from "../support/fixtures.ts";
import { readTopic } from "../support/kafka.ts";
import { pipelineSettled, startPipeline } from "../support/pipeline.ts";
import type { Pipeline } from "../support/pipeline.ts";
import { waitFor } from "../support/processes.ts";
import { kafkaAs } from "../support/stack.ts";

const codec = new AvroCodec();
let kafka: Kafka;
let producer: RecordProducer;
let p: Pipeline;

const hotline: Omit<PartnerPolicy, "version"> = {
  partnerId: "hotline-uk",
  categories: ["A", "B", "C"],
  minGradingStatus: "indicative",
  algorithms: ["md5", "sha1"],
  scheme: "uk",
  // A law-enforcement-only grant: the feed carries caseRefs, the audit log must not.
  extraFields: ["gradingStatus", "caseRefs"],
  delivery: "kafka",
  feedPartitions: 3,
};
const taskforce: Omit<PartnerPolicy, "version"> = {
  partnerId: "taskforce",
  categories: ["A", "B", "C"],
  minGradingStatus: "indicative",
  algorithms: ["md5", "sha1"],
  scheme: "uk",
  extraFields: [],
  delivery: "s3",
  feedPartitions: 1,
};

beforeAll(async () => {
  kafka = kafkaAs("test-distribution-audit");
  producer = createDurableProducer(kafka);
  await producer.connect();
  p = await startPipeline({ agencies: [{ id: "force-a" }, { id: "force-b" }], policies: [hotline, taskforce] });
});

afterAll(async () => {
  await p?.stop();
  await producer?.disconnect();
});

async function publish(subs: Submission[]): Promise<void> {
  await producer.send({
    topic: p.names.submitted,
    acks: -1,
    messages: subs.map((s) => ({ key: `${s.hashes[0]?.alg}:${s.hashes[0]?.value}`, value: codec.encode("Submission", s) })),
  });
}

const md5 = (): Hash => ({ alg: "md5", value: randomHex(16), quality: null });
const sha1 = (): Hash => ({ alg: "sha1", value: randomHex(20), quality: null });

/** Feed records issued so far per partner/partition: seqs are contiguous from 1, so the chain heads count them. */
async function issuedPositions(): Promise<Map<string, number>> {
  const { rows } = await p.hubDb.pool.query<{ partner_id: string; partition: number; last_seq: string }>(
    "SELECT partner_id, partition, last_seq::text FROM feed_partitions",
  );
  return new Map(rows.map((r) => [`${r.partner_id}/${r.partition}`, Number(r.last_seq)]));
}

async function settle(): Promise<void> {
  await waitFor("pipeline settled", () => pipelineSettled(p, kafka, ["hotline-uk"]), 60_000, 300);
}

/** Distribution's audit events, once there are at least `disclosures` feed events and `policies` policy events. */
async function distributionAudit(disclosures: number, policies: number): Promise<AuditEvent[]> {
  const isOurs = (e: AuditEvent) => e.service === "distribution";
  const decoded = (ms: { value: Buffer }[]) =>
    ms.flatMap((m) => expandAuditEvent(codec.decode("AuditEvent", m.value).value)).filter(isOurs);
  const messages = await readTopic(
    kafka,
    p.names.audit,
    (ms) => {
      const events = decoded(ms);
      return (
        events.filter((e) => e.action.startsWith("feed.")).length >= disclosures &&
        events.filter((e) => e.action === "policy.applied").length >= policies
      );
    },
    60_000,
  );
  for (const m of messages) {
    const e = codec.decode("AuditEvent", m.value).value;
    if (isOurs(e)) expect(m.key).toBe(e.subjectId);
  }
  return decoded(messages);
}

describe("distribution audit", () => {
  it("writes one disclosure event per feed record issued, at the same partner, partition and seq", async () => {
    const a = p.agencies["force-a"];
    const b = p.agencies["force-b"];
    if (!a || !b) throw new Error("agencies missing");
    const shared = md5();
    await publish([
      signedSubmission(a, { hashes: [shared, sha1()], grade: { uk: "B", ics: "B1", vics: null } }),
      signedSubmission(b, { hashes: [shared], grade: { uk: "B", ics: "B1", vics: null } }),
      ...Array.from({ length: 16 }, (_, i) =>
        signedSubmission(i % 2 ? a : b, { hashes: [md5(), sha1()], grade: { uk: i % 3 ? "A" : "C", ics: null, vics: null } }),
      ),
    ]);
    await settle();
    // A retraction: REMOVEs to both partners.
    await publish([
      signedSubmission(a, { op: "RETRACT", hashes: [shared], submittedAt: Date.now() + 1 }),
      signedSubmission(b, { op: "RETRACT", hashes: [shared], submittedAt: Date.now() + 1 }),
    ]);
    await settle();

    const positions = await issuedPositions();
    const total = [...positions.values()].reduce((n, s) => n + s, 0);
    expect(total).toBeGreaterThan(0);
    const events = await distributionAudit(total, 2);
    const disclosures = events.filter((e) => e.action.startsWith("feed."));
    expect(disclosures).toHaveLength(total);
    // Exactly seqs 1..last of every partner feed partition, each once.
    const seen = new Map<string, number[]>();
    for (const e of disclosures) {
      const k = `${e.detail["partnerId"]}/${e.detail["partition"]}`;
      seen.set(k, [...(seen.get(k) ?? []), Number(e.detail["seq"])]);
    }
    expect(new Set(seen.keys())).toEqual(new Set(positions.keys()));
    for (const [k, last] of positions)
      expect(
        seen.get(k)?.sort((x, y) => x - y),
        k,
      ).toEqual(Array.from({ length: last }, (_, i) => i + 1));
    expect(
      disclosures.some((e) => e.action === "feed.remove" && e.detail["partnerId"] === "taskforce" && e.detail["delivery"] === "s3"),
    ).toBe(true);

    // Against what the hotline's topic carries: same op, revision, algorithm, and the pseudonym of the audited record.
    const secret = p.distribution.deps.hub.pseudonymSecret;
    const feed = new Map<string, FeedRecord>();
    for (const m of await readTopic(
      kafka,
      p.names.feed("hotline-uk"),
      (ms) =>
        ms.length >= (positions.get("hotline-uk/0") ?? 0) + (positions.get("hotline-uk/1") ?? 0) + (positions.get("hotline-uk/2") ?? 0),
    )) {
      const r = codec.decode("FeedRecord", m.value).value;
      feed.set(`${r.partnerId}/${r.partition}/${r.seq}`, r);
    }
    const hotlineEvents = disclosures.filter((e) => e.detail["partnerId"] === "hotline-uk");
    expect(hotlineEvents.some((e) => e.action === "feed.remove")).toBe(true);
    for (const e of hotlineEvents) {
      const r = feed.get(`hotline-uk/${e.detail["partition"]}/${e.detail["seq"]}`);
      expect(r, JSON.stringify(e.detail)).toBeDefined();
      expect(e.action).toBe(r?.op === "UPSERT" ? "feed.upsert" : "feed.remove");
      expect(e.revision).toBe(r?.revision);
      expect(e.detail["alg"]).toBe(r?.alg);
      expect(e.detail["keyId"]).toBe(r?.keyId);
      expect(recordRef(secret, "hotline-uk", e.subjectId)).toBe(r?.recordRef);
      expect(e.detail["delivery"]).toBe("kafka");
    }

    // The feed does carry the granted case references; the audit log below does not.
    expect([...feed.values()].some((r) => r.extra["caseRefs"] === "SYN-CASE-0001")).toBe(true);
    for (const e of events) {
      expect(e.actor).toBe(DISTRIBUTION_ACTOR);
      for (const field of LAW_ENFORCEMENT_ONLY_FIELDS) expect(e.detail[field]).toBeUndefined();
      const text = JSON.stringify(e);
      // Hash values and case references stay out of the audit log.
      expect(text).not.toMatch(/SYN-CASE|grader-7|"value"/);
      for (const r of feed.values()) expect(text).not.toContain(r.value);
    }
    // The two policies applied at start, before any record: nothing issued then.
    const applied = events.filter((e) => e.action === "policy.applied");
    expect(applied.map((e) => [e.subjectId, e.revision, e.detail["previousVersion"]]).sort()).toEqual([
      ["hotline-uk", 1, "none"],
      ["taskforce", 1, "none"],
    ]);
  }, 120_000);

  it("audits a policy change as policy.applied, with its removals caused by the new version", async () => {
    const before = [...(await issuedPositions()).values()].reduce((n, s) => n + s, 0);
    const version = await setPolicy(p.hubDb.pool, { ...hotline, algorithms: ["md5"] });
    expect(version).toBe(2);
    await waitFor(
      "policy v2 applied",
      async () => (await p.hubDb.pool.query("SELECT 1 FROM policy_applied WHERE partner_id = 'hotline-uk' AND version = 2")).rowCount === 1,
      30_000,
      200,
    );
    await settle();
    const total = [...(await issuedPositions()).values()].reduce((n, s) => n + s, 0);
    expect(total).toBeGreaterThan(before);
    const events = await distributionAudit(total, 3);
    expect(events.filter((e) => e.action.startsWith("feed."))).toHaveLength(total);
    const applied = events.filter((e) => e.action === "policy.applied" && e.revision === 2);
    expect(applied).toHaveLength(1);
    const caused = events.filter((e) => e.detail["cause"] === "policy v2");
    expect(caused.length).toBe(total - before);
    expect(caused.every((e) => e.action === "feed.remove" && e.detail["alg"] === "sha1" && e.detail["partnerId"] === "hotline-uk")).toBe(
      true,
    );
    expect(applied[0]?.detail).toMatchObject({
      version: "2",
      previousVersion: "1",
      upserts: "0",
      removes: String(total - before),
      algorithms: "md5",
    });
  }, 120_000);
});
