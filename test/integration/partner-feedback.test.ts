/**
 * Partner feedback on the real stack: partners sign feedback in their sink (CLI path and the lookup
 * API's POST) and produce it to their own feedback topic; distribution verifies it, stores it and
 * opens reviews. Hostile feedback (unsigned, badly signed, unknown or another partner's recordRef,
 * replayed) is refused with its reason and kept on the dead-letter topic with its original bytes,
 * and the broker refuses a partner writing another partner's feedback topic. The review loop:
 * a FALSE_POSITIVE withdraws the record from the partner whose policy withholds under review, and
 * the authority's decision (upheld; accepted after a RETRACT) reaches every partner's chain.
 */
import { execFile } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Kafka } from "kafkajs";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FeedbackSender } from "../../services/partner-sink/feedback.ts";
import { openFeedbackSender, sendFeedback } from "../../services/partner-sink/feedback.ts";
import { buildLookupApi } from "../../services/partner-sink/lookup-api.ts";
import { backfillDisclosedRefs } from "../../services/distribution/feedback-processor.ts";
import { expandAuditEvent } from "../../services/shared/audit.ts";
import { REPO_ROOT } from "../../services/shared/config.ts";
import { partnerPrincipal } from "../../services/shared/kafka-access.ts";
import { createDurableProducer } from "../../services/shared/kafka.ts";
import type { RecordProducer } from "../../services/shared/kafka.ts";
import { createLogger } from "../../services/shared/logging.ts";
import { AvroCodec } from "../../services/shared/wire/codec.ts";
import { signFeedback } from "../../services/shared/wire/feedback.ts";
import type { UnsignedFeedback } from "../../services/shared/wire/feedback.ts";
import type { Hash, Submission } from "../../services/shared/wire/records.ts";
import { privateKeyFromPem } from "../../services/shared/wire/signing.ts";
import { signedSubmission } from "../support/agencies.ts";
import { randomHex } from "../support/fixtures.ts";
import { registerFreshKey } from "../support/keys.ts";
import { readTopic } from "../support/kafka.ts";
import { startPipeline } from "../support/pipeline.ts";
import type { Pipeline } from "../support/pipeline.ts";
import { waitFor } from "../support/processes.ts";
import { kafkaAs, principalEnv, stackEnv } from "../support/stack.ts";

const codec = new AvroCodec();
const run = promisify(execFile);
const silent = createLogger("test", "silent");
/** The lookup API's operational endpoints, which these tests do not ask for. */
const OPS = { registry: new Registry(), ready: async () => undefined };
const WITHHOLDING = "hotline-uk";
const KEEPING = "industry-x";
let kafka: Kafka;
let producer: RecordProducer;
let p: Pipeline;
const senders: Record<string, FeedbackSender> = {};
const keyFiles: Record<string, { keyId: string; pem: string }> = {};
const hashes: Hash[] = Array.from({ length: 3 }, () => ({ alg: "md5", value: randomHex(16), quality: null }));

beforeAll(async () => {
  kafka = kafkaAs("test-feedback");
  producer = createDurableProducer(kafka);
  await producer.connect();
  const policy = {
    categories: ["A", "B", "C"],
    minGradingStatus: "indicative",
    algorithms: ["md5"],
    scheme: "uk",
    extraFields: [],
  } as const;
  p = await startPipeline({
    agencies: [{ id: "force-a", authority: true }],
    policies: [
      { ...policy, partnerId: WITHHOLDING, delivery: "kafka", feedPartitions: 2, withholdUnderReview: true },
      { ...policy, partnerId: KEEPING, delivery: "kafka", feedPartitions: 2 },
    ],
  });
  for (const partnerId of [WITHHOLDING, KEEPING]) {
    const file = join(mkdtempSync(join(tmpdir(), "hashrelay-partner-")), "key.pem");
    const { keyId, privateKeyPem } = await registerFreshKey(p.hubDb.pool, "partner", partnerId, { file });
    keyFiles[partnerId] = { keyId, pem: privateKeyPem };
    const sender = await openFeedbackSender(
      {
        KAFKA_BROKERS: stackEnv().brokers,
        ...principalEnv(partnerPrincipal(partnerId)),
        PARTNER_ID: partnerId,
        TOPIC_NAMESPACE: p.namespace,
        PARTNER_FEEDBACK_KEY_ID: keyId,
        PARTNER_FEEDBACK_KEY_FILE: file,
      },
      codec,
      silent,
    );
    if (!sender) throw new Error("no sender");
    senders[partnerId] = sender;
  }
  const force = p.agencies["force-a"];
  if (!force) throw new Error("no force-a");
  await publish(hashes.map((h) => signedSubmission(force, { hashes: [h], grade: { uk: "B", ics: null, vics: null } })));
  for (const partnerId of [WITHHOLDING, KEEPING]) await waitFor(`${partnerId} holds the hashes`, async () => (await held(partnerId)) === 3);
});

afterAll(async () => {
  for (const s of Object.values(senders)) await s.producer.disconnect().catch(() => undefined);
  await p?.stop();
  await producer?.disconnect();
});

async function publish(subs: Submission[]): Promise<void> {
  await producer.send({
    topic: p.names.submitted,
    acks: -1,
    messages: subs.map((s) => ({ key: `md5:${s.hashes[0]?.value}`, value: codec.encode("Submission", s) })),
  });
}

function sinkPool(partnerId: string) {
  const sink = p.sinks[partnerId];
  if (!sink) throw new Error(`no sink for ${partnerId}`);
  return sink.db.pool;
}

async function held(partnerId: string): Promise<number> {
  const { rows } = await sinkPool(partnerId).query<{ n: string }>("SELECT count(*)::text AS n FROM partner_hashes WHERE NOT removed");
  return Number(rows[0]?.n);
}

async function refOf(partnerId: string, h: Hash): Promise<string> {
  const { rows } = await sinkPool(partnerId).query<{ record_ref: string }>(
    "SELECT record_ref FROM partner_hashes WHERE alg = $1 AND value = $2",
    [h.alg, h.value],
  );
  if (!rows[0]) throw new Error(`${partnerId} does not hold ${h.value}`);
  return rows[0].record_ref;
}

async function holds(partnerId: string, h: Hash): Promise<boolean> {
  const { rows } = await sinkPool(partnerId).query("SELECT 1 FROM partner_hashes WHERE alg = $1 AND value = $2 AND NOT removed", [
    h.alg,
    h.value,
  ]);
  return rows.length === 1;
}

async function recordIdOf(h: Hash): Promise<string> {
  const { rows } = await p.hubDb.pool.query<{ record_id: string }>(
    "SELECT record_id FROM distributed_hashes WHERE alg = $1 AND value = $2",
    [h.alg, h.value],
  );
  if (!rows[0]) throw new Error(`no record claims ${h.value}`);
  return rows[0].record_id;
}

function unsignedFeedback(partnerId: string, recordRef: string, over: Partial<UnsignedFeedback> = {}): UnsignedFeedback {
  return {
    feedbackId: randomUUID(),
    partnerId,
    recordRef,
    kind: "FALSE_POSITIVE",
    matchCount: null,
    timeBucket: null,
    reasonCode: "BENIGN_CONTENT",
    freeText: null,
    sentAt: Date.now(),
    keyId: keyFiles[partnerId]?.keyId ?? "",
    ...over,
  };
}

const signWith = (pem: string, f: UnsignedFeedback) =>
  codec.encode("PartnerFeedback", signFeedback(codec.schema("PartnerFeedback").type, f, privateKeyFromPem(pem)));

/** Produces raw bytes to a partner's feedback topic as that partner's principal (what a hostile partner can do). */
async function produceAs(partnerId: string, value: Buffer): Promise<void> {
  await senders[partnerId]?.producer.send({ topic: p.names.feedback(partnerId), acks: -1, messages: [{ key: "k", value }] });
}

/** The feed records a partner received for one hash, in chain order. */
async function feedOps(partnerId: string, h: Hash, atLeast: number): Promise<string[]> {
  const messages = await readTopic(kafka, p.names.feed(partnerId), (ms) => {
    return ms.filter((m) => codec.decode("FeedRecord", m.value).value.value === h.value).length >= atLeast;
  });
  return messages
    .map((m) => codec.decode("FeedRecord", m.value).value)
    .filter((r) => r.value === h.value)
    .sort((a, b) => a.seq - b.seq)
    .map((r) => r.op);
}

async function cli(args: string[]): Promise<string> {
  const env = { ...process.env, DATABASE_URL: p.hubDb.url, TOPIC_NAMESPACE: p.namespace };
  return (await run(`${REPO_ROOT}bin/hashrelay`, args, { env, timeout: 60_000 })).stdout;
}

describe("hostile feedback", () => {
  it("is refused with its reason and kept on the dead-letter topic with its original bytes", async () => {
    const hotlinePem = keyFiles[WITHHOLDING]?.pem as string;
    const ownRef = await refOf(WITHHOLDING, hashes[2] as Hash);
    const foreignRef = await refOf(KEEPING, hashes[2] as Hash);
    expect(foreignRef).not.toBe(ownRef);
    // A genuine MATCHED through the sink, then the same bytes again (a replay).
    const matched = await sendFeedback(sinkPool(WITHHOLDING), senders[WITHHOLDING] as FeedbackSender, {
      recordRef: ownRef,
      kind: "MATCHED",
      matchCount: 4,
      timeBucket: new Date().toISOString().slice(0, 10),
    });
    expect(matched.status).toBe("sent");
    const { rows } = await sinkPool(WITHHOLDING).query<{ body: Buffer }>("SELECT body FROM sent_feedback WHERE feedback_id = $1", [
      matched.feedbackId,
    ]);
    const hostile: Record<string, Buffer> = {
      FEEDBACK_REPLAYED: rows[0]?.body as Buffer,
      MISSING_SIGNATURE: codec.encode("PartnerFeedback", { ...unsignedFeedback(WITHHOLDING, ownRef), signature: Buffer.alloc(0) }),
      BAD_SIGNATURE: signWith(keyFiles[KEEPING]?.pem as string, unsignedFeedback(WITHHOLDING, ownRef)),
      UNKNOWN_RECORD_REF: signWith(hotlinePem, unsignedFeedback(WITHHOLDING, randomHex(16))),
      FOREIGN_RECORD_REF: signWith(hotlinePem, unsignedFeedback(WITHHOLDING, foreignRef)),
      PARTNER_MISMATCH: signWith(keyFiles[KEEPING]?.pem as string, unsignedFeedback(KEEPING, foreignRef)),
      MALFORMED_AVRO: Buffer.concat([
        Buffer.from([0xc3, 0x01]),
        Buffer.from(codec.schema("PartnerFeedback").fingerprint, "hex"),
        randomBytes(7),
      ]),
    };
    for (const bytes of Object.values(hostile)) await produceAs(WITHHOLDING, bytes);

    const topic = p.names.feedback(WITHHOLDING);
    const rejections = (
      await readTopic(
        kafka,
        p.names.rejected,
        (ms) => ms.filter((m) => codec.decode("Rejection", m.value).value.sourceTopic === topic).length >= Object.keys(hostile).length,
      )
    )
      .map((m) => codec.decode("Rejection", m.value).value)
      .filter((r) => r.sourceTopic === topic);
    for (const [reason, bytes] of Object.entries(hostile)) {
      const r = rejections.find((x) => x.originalBytes.equals(bytes));
      expect(r?.reason, `the DLQ holds the ${reason} record with its original bytes`).toBe(reason);
      expect(r?.service).toBe("distribution");
    }
    // Only the genuine MATCHED was stored.
    const stored = await p.hubDb.pool.query<{ feedback_id: string; match_count: string }>(
      "SELECT feedback_id, match_count FROM partner_feedback",
    );
    expect(stored.rows.map((r) => [r.feedback_id, Number(r.match_count)])).toEqual([[matched.feedbackId, 4]]);
    // Asking the sink again with the same id sends nothing (the hub would refuse it as a replay).
    const again = await sendFeedback(sinkPool(WITHHOLDING), senders[WITHHOLDING] as FeedbackSender, {
      recordRef: ownRef,
      kind: "MATCHED",
      matchCount: 4,
      feedbackId: matched.feedbackId,
    });
    expect(again.status).toBe("already-sent");
  });

  it("the broker refuses a partner writing another partner's feedback topic", async () => {
    const kafkaX = kafkaAs("test-feedback-foreign", partnerPrincipal(KEEPING));
    const foreign = kafkaX.producer({ allowAutoTopicCreation: false, retry: { retries: 0 } });
    await foreign.connect();
    try {
      await expect(
        foreign.send({ topic: p.names.feedback(WITHHOLDING), acks: -1, messages: [{ key: "k", value: randomBytes(16) }] }),
      ).rejects.toMatchObject({ cause: { type: "TOPIC_AUTHORIZATION_FAILED" } });
    } finally {
      await foreign.disconnect().catch(() => undefined);
    }
  });

  it("a send Kafka does not take is stored and answered with its feedbackId, then re-sent byte for byte", async () => {
    const sender = senders[KEEPING] as FeedbackSender;
    const failing: FeedbackSender = {
      ...sender,
      producer: { ...sender.producer, send: async () => Promise.reject(new Error("synthetic broker outage")) },
    };
    const api = buildLookupApi(sinkPool(KEEPING), silent, OPS, failing);
    const res = await api.inject({
      method: "POST",
      url: "/v1/feedback",
      payload: { recordRef: await refOf(KEEPING, hashes[2] as Hash), kind: "NOT_CSAM_IN_OUR_JURISDICTION" },
    });
    await api.close();
    expect(res.statusCode).toBe(503);
    const { feedbackId } = res.json() as { feedbackId: string };
    const stored = await sinkPool(KEEPING).query<{ body: Buffer; sent_at: Date | null }>(
      "SELECT body, sent_at FROM sent_feedback WHERE feedback_id = $1",
      [feedbackId],
    );
    expect(stored.rows[0]?.sent_at).toBeNull();
    const retried = await sendFeedback(sinkPool(KEEPING), sender, {
      recordRef: await refOf(KEEPING, hashes[2] as Hash),
      kind: "NOT_CSAM_IN_OUR_JURISDICTION",
      feedbackId,
    });
    expect(retried.status).toBe("resent");
    await waitFor("the hub has it", async () => {
      const { rows } = await p.hubDb.pool.query<{ body: Buffer }>("SELECT body FROM partner_feedback WHERE feedback_id = $1", [feedbackId]);
      return rows[0]?.body.equals(stored.rows[0]?.body as Buffer) === true;
    });
  });

  it("the refs of what partners held before disclosed_refs existed are backfilled once", async () => {
    const before = await p.hubDb.pool.query<{ partner_id: string; record_ref: string; record_id: string }>(
      "SELECT partner_id, record_ref, record_id FROM disclosed_refs ORDER BY 1, 2",
    );
    await p.hubDb.pool.query("DELETE FROM disclosed_refs");
    expect(await backfillDisclosedRefs(p.distribution.deps)).toBe(0); // not pending: nothing done
    await p.hubDb.pool.query("INSERT INTO distribution_backfills (name) VALUES ('disclosed_refs')");
    expect(await backfillDisclosedRefs(p.distribution.deps)).toBeGreaterThan(0);
    const after = await p.hubDb.pool.query("SELECT partner_id, record_ref, record_id FROM disclosed_refs ORDER BY 1, 2");
    // Every ref still held is back (refs of hashes since removed are not: no feed entry holds them).
    const held = new Set(after.rows.map((r) => JSON.stringify(r)));
    expect(before.rows.filter((r) => !held.has(JSON.stringify(r))).length).toBeLessThanOrEqual(1);
    expect(after.rows.every((r) => before.rows.some((b) => JSON.stringify(b) === JSON.stringify(r)))).toBe(true);
    await p.hubDb.pool.query("INSERT INTO disclosed_refs SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[]) ON CONFLICT DO NOTHING", [
      before.rows.map((r) => r.partner_id),
      before.rows.map((r) => r.record_ref),
      before.rows.map((r) => r.record_id),
    ]);
  });

  it("the sink refuses a recordRef it never received, before anything reaches the hub", async () => {
    await expect(
      sendFeedback(sinkPool(KEEPING), senders[KEEPING] as FeedbackSender, {
        recordRef: randomHex(16),
        kind: "NOT_CSAM_IN_OUR_JURISDICTION",
      }),
    ).rejects.toMatchObject({ reason: "UNKNOWN_RECORD_REF" });
  });
});

describe("the review loop", () => {
  it("a FALSE_POSITIVE withdraws the record from the withholding partner only; upheld restores it", async () => {
    const h = hashes[0] as Hash;
    const recordId = await recordIdOf(h);
    const api = buildLookupApi(sinkPool(KEEPING), silent, OPS, senders[KEEPING] as FeedbackSender);
    const res = await api.inject({
      method: "POST",
      url: "/v1/feedback",
      payload: { recordRef: await refOf(KEEPING, h), kind: "FALSE_POSITIVE", reasonCode: "BENIGN_CONTENT", freeText: "synthetic" },
    });
    expect(res.statusCode, res.body).toBe(202);
    const bad = await api.inject({
      method: "POST",
      url: "/v1/feedback",
      payload: { recordRef: await refOf(KEEPING, h), kind: "FALSE_POSITIVE" },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ reason: "INVALID_FIELD" });
    await api.close();

    await waitFor("withheld from the withholding partner", async () => !(await holds(WITHHOLDING, h)));
    expect(await holds(KEEPING, h)).toBe(true);
    expect(await cli(["review", "list", "--state", "open"])).toContain(recordId);

    const decided = await cli(["review", "decide", "--record", recordId, "--authority", "force-a", "--upheld", "--actor", "alice"]);
    expect(decided).toContain("upheld by force-a");
    await waitFor("restored to the withholding partner", () => holds(WITHHOLDING, h));
    expect(await feedOps(WITHHOLDING, h, 3)).toEqual(["UPSERT", "REMOVE", "UPSERT"]);
    expect(await feedOps(KEEPING, h, 1)).toEqual(["UPSERT"]);
  });

  it("accepted: the authority's RETRACT reaches the keeping partner, and the decision leaves the record withdrawn", async () => {
    const h = hashes[1] as Hash;
    const recordId = await recordIdOf(h);
    const sent = await sendFeedback(sinkPool(WITHHOLDING), senders[WITHHOLDING] as FeedbackSender, {
      recordRef: await refOf(WITHHOLDING, h),
      kind: "FALSE_POSITIVE",
      reasonCode: "WRONG_CATEGORY",
    });
    expect(sent.status).toBe("sent");
    await waitFor("withheld", async () => !(await holds(WITHHOLDING, h)));
    // Accepting before the correction is refused: the withheld partner would get the record back.
    await expect(
      cli(["review", "decide", "--record", recordId, "--authority", "force-a", "--accepted", "--actor", "alice"]),
    ).rejects.toThrow(/submit the correction/);
    const force = p.agencies["force-a"];
    if (!force) throw new Error("no force-a");
    await publish([signedSubmission(force, { op: "RETRACT", hashes: [h], submittedAt: Date.now() + 1 })]);
    await waitFor("withdrawn from the keeping partner", async () => !(await holds(KEEPING, h)));
    await cli(["review", "decide", "--record", recordId, "--authority", "force-a", "--accepted", "--actor", "alice"]);
    await waitFor("decision applied", async () => (await cli(["review", "list", "--state", "accepted"])).includes(", applied "));
    expect(await holds(WITHHOLDING, h)).toBe(false);
    expect(await feedOps(WITHHOLDING, h, 2)).toEqual(["UPSERT", "REMOVE"]);
    expect(await feedOps(KEEPING, h, 2)).toEqual(["UPSERT", "REMOVE"]);
  });

  it("counts feedback per record for operators and audits every step", async () => {
    const counts = await cli(["review", "counts"]);
    expect(counts).toContain(`${await recordIdOf(hashes[2] as Hash)}\tmatches 4`);
    const actions = new Set<string>();
    const wanted = ["feedback.received", "feedback.refused", "review.opened", "review.decided", "review.applied"];
    await readTopic(kafka, p.names.audit, (ms) => {
      for (const m of ms.slice(-50)) for (const e of expandAuditEvent(codec.decode("AuditEvent", m.value).value)) actions.add(e.action);
      return wanted.every((a) => actions.has(a));
    });
    expect(wanted.filter((a) => !actions.has(a))).toEqual([]);
  });
});
