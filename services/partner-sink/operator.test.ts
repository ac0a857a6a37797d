import { describe, expect, it } from "vitest";
import { AvroCodec } from "../shared/wire/codec.ts";
import { REASON_CODES } from "../shared/errors.ts";
import { GENESIS_DIGEST, feedRecordDigest } from "../shared/wire/feed-chain.ts";
import type { FeedRecord } from "../shared/wire/records.ts";
import { generateSigningKeyPair, privateKeyFromPem, publicKeyFromRaw, signRecord } from "../shared/wire/signing.ts";
import { RESUMED, formatAlerts, formatStatus, haltCodeOf, missingSeqs, partitionStatus, planResume, resumeHint } from "./operator.ts";
import type { PartitionState, ResumeOptions, SinkStatus } from "./operator.ts";
import { verifyFeedRecord } from "./verifier.ts";
import type { TrustedHubKey } from "./verifier.ts";

const codec = new AvroCodec();
const type = codec.schema("FeedRecord").type;
const hub = generateSigningKeyPair();
const keys: TrustedHubKey[] = [{ keyId: "hub:1", publicKey: publicKeyFromRaw(hub.publicKey), validUntil: null }];

function record(seq: number, prevDigest: Buffer, signer = hub.privateKeyPem, value = "0".repeat(32)): FeedRecord {
  return signRecord(
    "FeedRecord",
    type,
    {
      partnerId: "p1",
      partition: 0,
      seq,
      prevDigest,
      op: "UPSERT",
      alg: "md5",
      value,
      category: "A",
      contentType: "image",
      revision: 1,
      recordRef: "ref",
      extra: {},
      issuedAt: 1,
      keyId: "hub:1",
    },
    privateKeyFromPem(signer),
  );
}

const verify = (r: FeedRecord, s: { lastSeq: number; lastDigest: Buffer; bootstrapSeq?: number }, appliedDigest?: Buffer) =>
  verifyFeedRecord(r, type, {
    partnerId: "p1",
    partition: 0,
    keys,
    state: s,
    ...(appliedDigest ? { appliedDigest } : {}),
    now: new Date(),
  });

// The chain as this partner applied it: seqs 1..10.
const applied: FeedRecord[] = [];
for (let seq = 1, prev: Buffer = GENESIS_DIGEST; seq <= 10; seq++) {
  const r = record(seq, prev, hub.privateKeyPem, seq.toString(16).padStart(32, "0"));
  applied.push(r);
  prev = feedRecordDigest(type, r);
}
const head = feedRecordDigest(type, applied[9] as FeedRecord);

/** State after the sink refused `r` with a halting verdict (what applier.ts records). */
function haltedBy(r: FeedRecord, reason: string): PartitionState {
  const v = verify(r, { lastSeq: 10, lastDigest: head });
  if (v.kind !== "refuse" || !v.halt) throw new Error(`expected a halt, got ${JSON.stringify(v)}`);
  expect(v.reason).toBe(reason);
  return {
    partition: 0,
    lastSeq: 10,
    lastDigest: head,
    bootstrapSeq: 0,
    haltedReason: `${v.reason}: ${v.detail}`,
    haltedSeq: r.seq,
    haltedOffset: 57,
    haltedPrevDigest: r.prevDigest,
    haltedAt: new Date("2026-11-25T18:00:00Z"),
  };
}

const opts = (o: Partial<ResumeOptions> = {}): ResumeOptions => ({
  why: "hub confirmed seqs 11-12 were lost",
  operator: "ops@partner",
  acceptGap: false,
  acceptChainBreak: false,
  ...o,
});

describe("resume semantics (planResume)", () => {
  // The hub's chain went on without us seeing 11 and 12: 13 arrives, hub-signed.
  const hub11 = record(11, head);
  const hub12 = record(12, feedRecordDigest(type, hub11));
  const hub13 = record(13, feedRecordDigest(type, hub12));
  const hub14 = record(14, feedRecordDigest(type, hub13));
  const gap = haltedBy(hub13, "SEQ_GAP");

  it("RESUMED is a reason code, appended", () => {
    expect(REASON_CODES).toContain(RESUMED);
    expect(REASON_CODES.indexOf("RESUMED")).toBeGreaterThan(REASON_CODES.indexOf("INTERNAL"));
  });

  it("refuses a SEQ_GAP without --accept-gap, naming the seqs it would skip", () => {
    const plan = planResume(gap, 0, opts());
    expect(plan.kind).toBe("refuse");
    if (plan.kind !== "refuse") return;
    expect(plan.message).toContain("SEQ_GAP at seq 13 (Kafka offset 57)");
    expect(plan.message).toContain("seqs 11..12 (2 records)");
    expect(plan.message).toContain("--accept-gap");
    expect(planResume(gap, 0, opts({ acceptChainBreak: true })).kind).toBe("refuse");
  });

  it("with --accept-gap: the halting record applies next, then the chain goes on; the alert names the skipped seqs", () => {
    const plan = planResume(gap, 0, opts({ acceptGap: true }));
    if (plan.kind !== "resume") throw new Error(plan.message);
    expect(plan.lastSeq).toBe(12);
    expect(plan.lastDigest.equals(hub13.prevDigest)).toBe(true);
    expect(plan.alert).toMatchObject({ partition: 0, seq: 13, offset: 57 });
    expect(plan.alert.detail).toContain("resumed by ops@partner: hub confirmed seqs 11-12 were lost");
    expect(plan.alert.detail).toContain("skipped seqs 11..12 (2 records)");
    const state = { lastSeq: plan.lastSeq, lastDigest: plan.lastDigest };
    const v13 = verify(hub13, state);
    expect(v13.kind).toBe("apply");
    if (v13.kind !== "apply") return;
    expect(verify(hub14, { lastSeq: 13, lastDigest: v13.digest }).kind).toBe("apply");
    // A skipped record that turns up later is refused, never applied out of order.
    expect(verify(hub11, { lastSeq: 14, lastDigest: v13.digest })).toMatchObject({ kind: "refuse", reason: "SEQ_REORDER", halt: false });
  });

  it("never lets a wrongly signed record through a resumed chain", () => {
    const plan = planResume(gap, 0, opts({ acceptGap: true }));
    if (plan.kind !== "resume") throw new Error(plan.message);
    const forged = record(13, plan.lastDigest, generateSigningKeyPair().privateKeyPem);
    expect(verify(forged, { lastSeq: plan.lastSeq, lastDigest: plan.lastDigest })).toMatchObject({
      kind: "refuse",
      reason: "BAD_SIGNATURE",
    });
    const tampered = { ...hub13, value: "f".repeat(32) };
    expect(verify(tampered, { lastSeq: plan.lastSeq, lastDigest: plan.lastDigest })).toMatchObject({
      kind: "refuse",
      reason: "BAD_SIGNATURE",
    });
  });

  it("names a single skipped seq in the singular", () => {
    const one = haltedBy(hub12, "SEQ_GAP");
    const plan = planResume(one, 0, opts({ acceptGap: true }));
    if (plan.kind !== "resume") throw new Error(plan.message);
    expect(plan.alert.detail).toContain("skipped seq 11 (1 record)");
    expect(plan.lastSeq).toBe(11);
  });

  it("refuses a CHAIN_BROKEN without --accept-chain-break, advising a re-bootstrap; --accept-gap is not enough", () => {
    const fork = record(11, Buffer.alloc(32, 7));
    const broken = haltedBy(fork, "CHAIN_BROKEN");
    for (const o of [opts(), opts({ acceptGap: true })]) {
      const plan = planResume(broken, 0, o);
      expect(plan.kind).toBe("refuse");
      if (plan.kind === "refuse") {
        expect(plan.message).toContain("CHAIN_BROKEN at seq 11");
        expect(plan.message).toContain("re-bootstrap");
        expect(plan.message).toContain("--accept-chain-break");
      }
    }
    expect(planResume(broken, 0, opts({ acceptGap: true }))).toMatchObject({
      kind: "refuse",
      message: expect.stringContaining("--accept-gap is for SEQ_GAP"),
    });
  });

  it("with --accept-chain-break: adopts the hub's chain at the halting record, keeping the seq", () => {
    const fork = record(11, Buffer.alloc(32, 7));
    const plan = planResume(haltedBy(fork, "CHAIN_BROKEN"), 0, opts({ acceptChainBreak: true }));
    if (plan.kind !== "resume") throw new Error(plan.message);
    expect(plan.lastSeq).toBe(10);
    expect(plan.lastDigest.equals(Buffer.alloc(32, 7))).toBe(true);
    expect(plan.alert.detail).toContain("accepted CHAIN_BROKEN");
    expect(verify(fork, { lastSeq: plan.lastSeq, lastDigest: plan.lastDigest }).kind).toBe("apply");
  });

  it("refuses what is not halted, has no row, or has no reason; a halt without details is only cleared", () => {
    const running: PartitionState = {
      ...gap,
      haltedReason: null,
      haltedSeq: null,
      haltedOffset: null,
      haltedPrevDigest: null,
      haltedAt: null,
    };
    expect(planResume(running, 0, opts({ acceptGap: true }))).toMatchObject({
      kind: "refuse",
      message: expect.stringContaining("not halted"),
    });
    expect(planResume(undefined, 4, opts())).toMatchObject({
      kind: "refuse",
      message: expect.stringContaining("partition 4 has no feed_state row"),
    });
    expect(planResume(gap, 0, opts({ why: "  ", acceptGap: true }))).toMatchObject({
      kind: "refuse",
      message: expect.stringContaining("--reason"),
    });
    const legacy: PartitionState = { ...running, haltedReason: "SEQ_GAP: expected seq 11, got 13" };
    const plan = planResume(legacy, 0, opts());
    if (plan.kind !== "resume") throw new Error(plan.message);
    expect(plan.lastSeq).toBe(10);
    expect(plan.lastDigest.equals(head)).toBe(true);
    expect(plan.alert.detail).toContain("verifies the record at its stored offset again");
  });

  it("refuses when feed_state moved since the halt", () => {
    expect(planResume({ ...gap, lastSeq: 12 }, 0, opts({ acceptGap: true }))).toMatchObject({
      kind: "refuse",
      message: expect.stringContaining("changed since the halt"),
    });
    const broken = haltedBy(record(11, Buffer.alloc(32, 7)), "CHAIN_BROKEN");
    expect(planResume({ ...broken, lastSeq: 9 }, 0, opts({ acceptChainBreak: true }))).toMatchObject({
      kind: "refuse",
      message: expect.stringContaining("changed since the halt"),
    });
  });
});

describe("status and alerts output", () => {
  const gapState: PartitionState = {
    partition: 1,
    lastSeq: 10,
    lastDigest: Buffer.alloc(32, 0xab),
    bootstrapSeq: 4,
    haltedReason: "SEQ_GAP: expected seq 11, got 13",
    haltedSeq: 13,
    haltedOffset: 57,
    haltedPrevDigest: Buffer.alloc(32, 1),
    haltedAt: new Date("2026-11-25T18:00:00Z"),
  };

  it("parses halt codes and missing seqs", () => {
    expect(haltCodeOf("SEQ_GAP: expected seq 11, got 13")).toBe("SEQ_GAP");
    expect(haltCodeOf("CHAIN_BROKEN: seq 11: prevDigest does not match the chain")).toBe("CHAIN_BROKEN");
    expect(haltCodeOf("stopped by hand")).toBeNull();
    expect(haltCodeOf(null)).toBeNull();
    expect(missingSeqs(gapState)).toEqual({ from: 11, to: 12, count: 2 });
    expect(missingSeqs({ ...gapState, haltedReason: "CHAIN_BROKEN: x" })).toBeNull();
  });

  it("shows each partition, the halt, the totals and what to type next", () => {
    const halted = partitionStatus(gapState, { count: 3, lastAt: new Date("2026-11-25T18:00:00Z") });
    const running = partitionStatus(
      { ...gapState, partition: 0, haltedReason: null, haltedSeq: null, haltedOffset: null, haltedPrevDigest: null, haltedAt: null },
      { count: 0, lastAt: null },
    );
    expect(halted).toMatchObject({
      partition: 1,
      lastSeq: 10,
      chainHead: "abababababababab",
      bootstrapSeq: 4,
      alerts: 3,
      halted: { code: "SEQ_GAP", seq: 13, offset: 57, missing: { from: 11, to: 12, count: 2 } },
    });
    expect(running.halted).toBeNull();
    const status: SinkStatus = { partitions: [running, halted], totals: { live: 120, tombstones: 3, alerts: 3 }, halted: [1] };
    const text = formatStatus(status);
    expect(text).toMatch(/^partition\s+last seq\s+chain head\s+bootstrap seq\s+alerts\s+state$/m);
    expect(text).toMatch(/^0\s+10\s+abababababababab\s+4\s+0\s+applying$/m);
    expect(text).toContain("HALTED at seq 13 (Kafka offset 57) since 2026-11-25T18:00:00.000Z: SEQ_GAP: expected seq 11, got 13");
    expect(text).toContain("rows: 120 live, 3 tombstones; alerts: 3");
    expect(text).toContain("partition 1: seq 11..12 missing (2 records)");
    expect(text).toContain('hashrelay-sink resume --partition 1 --reason "<why>" --accept-gap');
    expect(formatStatus({ partitions: [], totals: { live: 0, tombstones: 0, alerts: 0 }, halted: [] })).toContain("feed_state is empty");
    expect(
      resumeHint(partitionStatus({ ...gapState, haltedReason: "CHAIN_BROKEN: x", haltedSeq: 11 }, { count: 1, lastAt: null })),
    ).toContain("--accept-chain-break");
  });

  it("lists alerts as a table", () => {
    const text = formatAlerts([
      {
        id: 1,
        at: "2026-11-25T18:00:00.000Z",
        partition: 1,
        seq: 13,
        kafkaOffset: 57,
        reason: "SEQ_GAP",
        detail: "expected seq 11, got 13",
      },
      { id: 2, at: "2026-11-25T18:05:00.000Z", partition: null, seq: null, kafkaOffset: null, reason: "BAD_MAGIC", detail: "not avro" },
    ]).split("\n");
    expect(text[0]).toMatch(/^time\s+partition\s+seq\s+offset\s+reason\s+detail$/);
    expect(text[1]).toMatch(/^2026-11-25T18:00:00.000Z\s+1\s+13\s+57\s+SEQ_GAP\s+expected seq 11, got 13$/);
    expect(text[2]).toMatch(/^2026-11-25T18:05:00.000Z\s+-\s+-\s+-\s+BAD_MAGIC\s+not avro$/);
    expect(formatAlerts([])).toBe("no alerts");
  });
});
