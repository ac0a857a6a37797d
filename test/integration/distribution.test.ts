/**
 * Distribution and partner sinks end to end on the real stack: two Kafka partners with different
 * policies and the UK-US taskforce on S3. Checks reconciliation against the canonical records,
 * retraction as REMOVE, minimisation of every feed record, refusal of forged and out-of-chain
 * records, and a new partner bootstrapping from the signed S3 snapshot.
 */
import { randomUUID } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import type { Kafka } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { recordRef } from "../../services/distribution/feed-writer.ts";
import { expectedHoldings, partnerHoldings, reconcile } from "../../services/distribution/reconcile.ts";
import type { PartnerPolicy } from "../../services/distribution/policy.ts";
import { loadPolicies } from "../../services/distribution/policy-store.ts";
import { AvroCodec } from "../../services/shared/wire/codec.ts";
import { createDurableProducer } from "../../services/shared/kafka.ts";
import type { RecordProducer } from "../../services/shared/kafka.ts";
import type { CanonicalRecord, FeedRecord, Hash, Submission } from "../../services/shared/wire/records.ts";
import { signRecord } from "../../services/shared/wire/signing.ts";
import { signedSubmission } from "../support/agencies.ts";
import { randomHex, sampleCanonicalRecord } from "../support/fixtures.ts";
import { readTopic } from "../support/kafka.ts";
import { pipelineSettled, startPipeline } from "../support/pipeline.ts";
import type { Pipeline } from "../support/pipeline.ts";
import { waitFor } from "../support/processes.ts";
import { kafkaAs, stackEnv, stackS3Client } from "../support/stack.ts";
import { hotlinePolicy, industryPolicy, taskforcePolicy } from "../../test/support/fixtures.ts";

const codec = new AvroCodec();
let kafka: Kafka;
let producer: RecordProducer;
let p: Pipeline;
let policies: PartnerPolicy[];

const LAW_ENFORCEMENT_ONLY = [
  "caseRefs",
  "series",
  "victimIdentified",
  "offenderIdentified",
  "graderRefs",
  "agencies",
  "caseRef",
  "graderRef",
];

beforeAll(async () => {
  kafka = kafkaAs("test-distribution");
  producer = createDurableProducer(kafka);
  await producer.connect();
  p = await startPipeline({
    agencies: [{ id: "force-a" }, { id: "force-b" }, { id: "nca", authority: true }],
    policies: [
      // A UK hotline: every indecent category, even indicative, UK scheme, exact hashes only.
      hotlinePolicy("hotline-uk"),
      // An internet company: confirmed A and B only, ICS scheme, with PDQ and one granted extra.
      industryPolicy("industry-x"),
      // The UK-US taskforce: S3 bundles in the ICS scheme.
      taskforcePolicy("taskforce"),
    ],
  });
  policies = await loadPolicies(p.hubDb.pool);
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

async function canonicalRecords(): Promise<CanonicalRecord[]> {
  const { rows } = await p.hubDb.pool.query<{ body: Buffer }>("SELECT body FROM distributed_records");
  return rows.map((r) => codec.decode("CanonicalRecord", r.body).value);
}

/** Waits until every Kafka partner's database equals what its policy implies over the canonical records. */
async function reconciled(only?: string[]): Promise<void> {
  const partners = only ?? policies.filter((x) => x.delivery !== "s3").map((x) => x.partnerId);
  await waitFor("pipeline settled", () => pipelineSettled(p, kafka, partners), 60_000, 300);
  await waitFor(
    "partners reconciled",
    async () => {
      const records = await canonicalRecords();
      for (const policy of policies.filter((x) => partners.includes(x.partnerId))) {
        const sink = p.sinks[policy.partnerId];
        if (!sink) return false;
        const report = reconcile(expectedHoldings(policy, records), await partnerHoldings(sink.db.pool));
        if (!report.ok)
          throw new Error(
            `${policy.partnerId}: ${JSON.stringify({ ...report, missing: report.missing.length, unexpected: report.unexpected.length })}`,
          );
      }
      return true;
    },
    10_000,
    300,
  );
}

const md5 = (): Hash => ({ alg: "md5", value: randomHex(16), quality: null });
const sha1 = (): Hash => ({ alg: "sha1", value: randomHex(20), quality: null });

describe("distribution to partners", () => {
  const shared = md5();
  const lonely = md5();
  const graded = (uk: "A" | "B" | "C", ics: "A1" | "A2" | "B1" | "B2" | null) => ({ uk, ics, vics: null });

  it("delivers each partner exactly what its policy implies, and only the fields it grants", async () => {
    const a = p.agencies["force-a"];
    const b = p.agencies["force-b"];
    if (!a || !b) throw new Error("agencies missing");
    const subs = [
      // Confirmed by two forces: every partner gets it.
      signedSubmission(a, { hashes: [shared, sha1()], grade: graded("B", "B1") }),
      signedSubmission(b, { hashes: [shared], grade: graded("B", "B1") }),
      // Indicative only: the hotline gets it, industry does not.
      signedSubmission(a, { hashes: [lonely], grade: graded("A", "A1") }),
      // Category C with no ICS: the taskforce cannot map it (counted, not guessed).
      signedSubmission(b, { hashes: [md5()], grade: graded("C", null) }),
      ...Array.from({ length: 40 }, (_, i) =>
        signedSubmission(i % 2 ? a : b, { hashes: [md5(), sha1()], grade: graded(i % 3 ? "A" : "C", i % 3 ? "A2" : null) }),
      ),
    ];
    await publish(subs);
    await reconciled();

    const hotline = await partnerHoldings(p.sinks["hotline-uk"]?.db.pool ?? p.hubDb.pool);
    const industry = await partnerHoldings(p.sinks["industry-x"]?.db.pool ?? p.hubDb.pool);
    expect(hotline.get(`md5:${shared.value}`)).toBe("B");
    expect(industry.get(`md5:${shared.value}`)).toBe("B1");
    expect(hotline.get(`md5:${lonely.value}`)).toBe("A");
    expect(industry.has(`md5:${lonely.value}`)).toBe(false);
    expect([...hotline.keys()].some((k) => k.startsWith("sha1:"))).toBe(true);
    expect([...industry.keys()].every((k) => k.startsWith("md5:") || k.startsWith("pdq:"))).toBe(true);

    // Minimisation over every record on every feed topic.
    for (const policy of policies.filter((x) => x.delivery !== "s3")) {
      const messages = await readTopic(kafka, p.names.feed(policy.partnerId), (ms) => ms.length > 0, 10_000);
      for (const m of messages) {
        const r = codec.decode("FeedRecord", m.value).value;
        expect(Object.keys(r.extra).every((k) => (policy.extraFields as string[]).includes(k))).toBe(true);
        for (const field of LAW_ENFORCEMENT_ONLY) expect(r.extra[field]).toBeUndefined();
        // recordRef is a per-partner pseudonym, never the hub's record id.
        expect(r.recordRef).toMatch(/^[0-9a-f]{32}$/);
        expect(policy.algorithms).toContain(r.alg);
        expect(r.partnerId).toBe(policy.partnerId);
      }
    }
    const { rows } = await p.hubDb.pool.query<{ partner_id: string; count: number }>("SELECT partner_id, count FROM unmappable_counts");
    expect(rows.find((r) => r.partner_id === "taskforce")?.count).toBeGreaterThan(0);
  });

  it("turns a retraction into a REMOVE in every partner that held the hash", async () => {
    const a = p.agencies["force-a"];
    const b = p.agencies["force-b"];
    if (!a || !b) throw new Error("agencies missing");
    await publish([
      signedSubmission(a, { op: "RETRACT", hashes: [shared], submittedAt: Date.now() + 1 }),
      signedSubmission(b, { op: "RETRACT", hashes: [shared], submittedAt: Date.now() + 1 }),
    ]);
    await waitFor("removal reached the hotline", async () => {
      const { rows } = await (p.sinks["hotline-uk"]?.db.pool ?? p.hubDb.pool).query<{ removed: boolean }>(
        "SELECT removed FROM partner_hashes WHERE alg = 'md5' AND value = $1",
        [shared.value],
      );
      return rows[0]?.removed === true;
    });
    await reconciled();
    const res = await fetch(new URL(`/v1/hashes/md5/${shared.value}`, p.sinks["hotline-uk"]?.sink.url));
    expect(res.status).toBe(404);
    const feed = await readTopic(kafka, p.names.feed("industry-x"), (ms) =>
      ms.some((m) => {
        const r = codec.decode("FeedRecord", m.value).value;
        return r.op === "REMOVE" && r.value === shared.value;
      }),
    );
    const removal = feed.map((m) => codec.decode("FeedRecord", m.value).value).find((r) => r.op === "REMOVE" && r.value === shared.value);
    expect(removal).toMatchObject({ category: null, extra: {} });
    // The same record has a different pseudonym in each partner's feed.
    const hotlineFeed = await readTopic(kafka, p.names.feed("hotline-uk"), (ms) =>
      ms.some((m) => codec.decode("FeedRecord", m.value).value.value === shared.value),
    );
    const hotlineRef = hotlineFeed.map((m) => codec.decode("FeedRecord", m.value).value).find((r) => r.value === shared.value)?.recordRef;
    expect(hotlineRef).toBeDefined();
    expect(hotlineRef).not.toBe(removal?.recordRef);
  });

  it("keeps a merged hash with the survivor whatever order the canonical partitions deliver the merge in", async () => {
    // Dedup merged M into S: S rev 2 now owns X, M rev 2 points at S with no hashes. S and M live on
    // different canonical partitions; each step waits until distribution has applied it, so the
    // interleaving is exactly the one given (the demo's failure was S1 S2 M1 M2).
    const orders = [
      ["S1", "S2", "M1", "M2"],
      ["M1", "S1", "S2", "M2"],
      ["M1", "S1", "M2", "S2"],
    ] as const;
    const cases: { S: string; X: Hash }[] = [];
    for (const order of orders) {
      const S = randomUUID();
      const M = randomUUID();
      const X = md5();
      const [s1, sSha, mSha] = [md5(), sha1(), sha1()];
      const base = (recordId: string, revision: number, hashes: Hash[], updatedAt: number): CanonicalRecord => ({
        ...sampleCanonicalRecord(),
        recordId,
        revision,
        hashes,
        updatedAt,
        classification: { uk: "A", ics: "A1" },
        gradingStatus: "confirmed",
        confirmations: 2,
      });
      const t = Date.now();
      const records = {
        S1: base(S, 1, [s1, sSha], t),
        M1: base(M, 1, [X, mSha], t + 1),
        S2: base(S, 2, [s1, sSha, X, mSha], t + 2),
        M2: { ...base(M, 2, [], t + 2), deleted: true, mergedInto: S },
      };
      for (const step of order) {
        const r = records[step];
        await producer.send({
          topic: p.names.canonical,
          acks: -1,
          messages: [{ key: r.recordId, partition: step.startsWith("S") ? 0 : 1, value: codec.encode("CanonicalRecord", r) }],
        });
        await waitFor(`${order.join(" ")}: ${step} distributed`, async () => {
          const { rows } = await p.hubDb.pool.query<{ revision: string }>(
            "SELECT revision::text FROM distributed_records WHERE record_id = $1",
            [r.recordId],
          );
          return Number(rows[0]?.revision) >= r.revision;
        });
      }
      cases.push({ S, X });
    }
    await reconciled();
    for (const { S, X } of cases) {
      for (const partnerId of ["hotline-uk", "industry-x"]) {
        const { rows } = await (p.sinks[partnerId]?.db.pool ?? p.hubDb.pool).query<{ record_ref: string; removed: boolean }>(
          "SELECT record_ref, removed FROM partner_hashes WHERE alg = 'md5' AND value = $1",
          [X.value],
        );
        expect(rows[0]).toEqual({ record_ref: recordRef("test-pseudonym-secret-0123456789", partnerId, S), removed: false });
        const { rows: hub } = await p.hubDb.pool.query<{ record_id: string }>(
          "SELECT record_id FROM feed_entries WHERE partner_id = $1 AND alg = 'md5' AND value = $2",
          [partnerId, X.value],
        );
        expect(hub[0]?.record_id).toBe(S);
      }
    }
  });

  it("refuses a forged record and halts a partition on a gap, leaving the partner database untouched", async () => {
    const sink = p.sinks["hotline-uk"];
    if (!sink) throw new Error("no hotline sink");
    const before = await partnerHoldings(sink.db.pool);
    const { rows: heads } = await sink.db.pool.query<{ partition: number; last_seq: number; last_digest: Buffer }>(
      "SELECT * FROM feed_state ORDER BY partition LIMIT 1",
    );
    const head = heads[0];
    if (!head) throw new Error("no feed state");
    const forgedValue = randomHex(16);
    const base: Omit<FeedRecord, "signature"> = {
      partnerId: "hotline-uk",
      partition: head.partition,
      seq: head.last_seq + 1,
      prevDigest: head.last_digest,
      op: "UPSERT",
      alg: "md5",
      value: forgedValue,
      category: "A",
      contentType: "image",
      revision: 1,
      recordRef: randomHex(16),
      extra: {},
      issuedAt: Date.now(),
      keyId: p.hubKey.keyId,
    };
    // Forged: right chain position, wrong key.
    const { generateSigningKeyPair, privateKeyFromPem } = await import("../../services/shared/wire/signing.ts");
    const forged = signRecord(
      "FeedRecord",
      codec.schema("FeedRecord").type,
      base,
      privateKeyFromPem(generateSigningKeyPair().privateKeyPem),
    );
    // Out of chain: validly signed by the hub, but seq jumps ahead.
    const gapped = signRecord(
      "FeedRecord",
      codec.schema("FeedRecord").type,
      { ...base, seq: head.last_seq + 5, value: randomHex(16) },
      p.hubKey.privateKey,
    );
    await producer.send({
      topic: p.names.feed("hotline-uk"),
      acks: -1,
      messages: [forged, gapped].map((r) => ({ partition: head.partition, key: "x", value: codec.encode("FeedRecord", r) })),
    });

    const alerts = await waitFor("alerts raised", async () => {
      const { rows } = await sink.db.pool.query<{ reason: string }>("SELECT reason FROM sink_alerts ORDER BY id");
      return rows.length >= 2 ? rows.map((r) => r.reason) : false;
    });
    expect(alerts).toEqual(["BAD_SIGNATURE", "SEQ_GAP"]);
    const after = await partnerHoldings(sink.db.pool);
    expect(after).toEqual(before);
    const { rows: halted } = await sink.db.pool.query<{ halted_reason: string | null }>(
      "SELECT halted_reason FROM feed_state WHERE partition = $1",
      [head.partition],
    );
    expect(halted[0]?.halted_reason).toMatch(/^SEQ_GAP/);
  });

  it("writes signed S3 snapshots (the taskforce bundle in ICS) and a new partner bootstraps from one", async () => {
    await p.distribution.exportNow({ snapshots: true });
    const env = stackEnv();
    const s3 = stackS3Client(env.s3);
    const get = async (key: string) =>
      Buffer.from(
        await (
          (await s3.send(new GetObjectCommand({ Bucket: env.s3.bucket, Key: key }))).Body as { transformToByteArray(): Promise<Uint8Array> }
        ).transformToByteArray(),
      );
    const pointer = JSON.parse((await get(`${p.namespace}/feeds/taskforce/latest-snapshot.json`)).toString()) as { manifest: string };
    const manifest = JSON.parse((await get(pointer.manifest)).toString()) as { object: string; count: number; signature: string };
    const lines = gunzipSync(await get(manifest.object))
      .toString()
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { category: string; alg: string });
    expect(lines.length).toBe(manifest.count);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.every((l) => ["A1", "A2", "B1", "B2"].includes(l.category))).toBe(true);
    const taskforce = policies.find((x) => x.partnerId === "taskforce");
    if (!taskforce) throw new Error("no taskforce policy");
    expect(lines.length).toBe(expectedHoldings(taskforce, await canonicalRecords()).size);

    // A new partner: policy added now, reconciled, snapshot written, sink bootstraps then tails.
    const { registerPartner } = await import("../../services/admin/registry.ts");
    const { setPolicy } = await import("../../services/distribution/policy-store.ts");
    await registerPartner(p.hubDb.pool, { partnerId: "newcomer", name: "Synthetic newcomer" });
    await setPolicy(p.hubDb.pool, hotlinePolicy("newcomer", { algorithms: ["md5"], delivery: "both", feedPartitions: 2 }));
    await p.distribution.refreshPolicies();
    policies = await loadPolicies(p.hubDb.pool);
    await waitFor(
      "feed outbox drained",
      async () => Number((await p.hubDb.pool.query("SELECT count(*) AS n FROM feed_outbox")).rows[0]?.n) === 0,
    );
    await p.distribution.exportNow({ snapshots: true });
    const newcomerPointer = JSON.parse((await get(`${p.namespace}/feeds/newcomer/latest-snapshot.json`)).toString()) as {
      manifest: string;
    };
    const newcomerManifest = JSON.parse((await get(newcomerPointer.manifest)).toString()) as { kafkaOffsets?: Record<string, string> };
    expect(Object.keys(newcomerManifest.kafkaOffsets ?? {}).sort()).toEqual(["0", "1"]);
    await p.startSink("newcomer");
    // The sink starts tailing where the snapshot ends, not at the beginning of the topic.
    const { rows: seeded } = await (p.sinks["newcomer"]?.db.pool ?? p.hubDb.pool).query<{ partition: number; next_offset: string }>(
      "SELECT partition, next_offset::text FROM consumer_offsets",
    );
    for (const r of seeded)
      expect(Number(r.next_offset)).toBeGreaterThanOrEqual(Number(newcomerManifest.kafkaOffsets?.[String(r.partition)]));
    await publish([
      signedSubmission(p.agencies["force-a"] as NonNullable<(typeof p.agencies)["force-a"]>, { hashes: [md5()], grade: graded("C", null) }),
    ]);
    await reconciled(["newcomer", "industry-x"]);
    const { rows } = await (p.sinks["newcomer"]?.db.pool ?? p.hubDb.pool).query<{ n: number }>(
      "SELECT count(*)::int AS n FROM feed_applied",
    );
    const held = await partnerHoldings(p.sinks["newcomer"]?.db.pool ?? p.hubDb.pool);
    // Most rows came from the snapshot, not from replaying the topic, and replayed older records raised no alerts.
    expect(held.size).toBeGreaterThan(rows[0]?.n ?? 0);
    const alerts = await (p.sinks["newcomer"]?.db.pool ?? p.hubDb.pool).query("SELECT reason FROM sink_alerts");
    expect(alerts.rows).toEqual([]);
  });
});
