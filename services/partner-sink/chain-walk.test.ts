import { describe, expect, it } from "vitest";
import { randomHex } from "../../test/support/fixtures.ts";
import { createLogger } from "../shared/logging.ts";
import { AvroCodec } from "../shared/wire/codec.ts";
import { CHAIN_SIGNING_INTERVAL, GENESIS_DIGEST, feedRecordDigest } from "../shared/wire/feed-chain.ts";
import type { FeedRecord } from "../shared/wire/records.ts";
import { generateSigningKeyPair, privateKeyFromPem, publicKeyFromRaw, signRecord } from "../shared/wire/signing.ts";
import { decode, walkChain } from "./chain-walk.ts";

const codec = new AvroCodec();
const type = codec.schema("FeedRecord").type;
const hub = generateSigningKeyPair();
const ctx = {
  partnerId: "p1",
  keys: [{ keyId: "hub:1", publicKey: publicKeyFromRaw(hub.publicKey), validUntil: null }],
  logger: createLogger("test", "silent"),
  now: new Date(),
};
const genesis = { lastSeq: 0, lastDigest: GENESIS_DIGEST, bootstrapSeq: 0, judgedTo: 0 };

/** Signed records of partition 0, seq 1.. chained; `fields[i]` overrides the (i+1)th. */
function records(fields: Partial<FeedRecord>[]): FeedRecord[] {
  let prev: Buffer = GENESIS_DIGEST;
  return fields.map((f, i) => {
    const r = signRecord(
      "FeedRecord",
      type,
      {
        partnerId: "p1",
        partition: 0,
        seq: i + 1,
        prevDigest: prev,
        op: "UPSERT",
        alg: "md5",
        value: randomHex(16),
        category: "A",
        contentType: "image",
        revision: i + 1,
        recordRef: "ref",
        extra: {},
        issuedAt: 1,
        keyId: "hub:1",
        ...f,
      },
      privateKeyFromPem(hub.privateKeyPem),
    );
    prev = feedRecordDigest(type, r);
    return r;
  });
}
const messages = (from: number, values: (FeedRecord | Buffer)[]) =>
  values.map((v, i) => decode(codec, { offset: String(from + i), value: Buffer.isBuffer(v) ? v : codec.encode("FeedRecord", v) }));

describe("walking a partition's batch along its chain", () => {
  it("keeps the last change of each hash and moves the chain head to the last record applied", () => {
    const value = randomHex(16);
    const rs = records([{ value }, {}, { op: "REMOVE", value, category: null, contentType: null }]);
    const walk = walkChain(ctx, 0, 10, messages(10, rs), genesis, new Map());
    expect(walk).toMatchObject({ applied: 3, refused: 0, next: 13, lastSeq: 3, halt: null });
    expect(walk.lastDigest.equals(feedRecordDigest(type, rs[2] as FeedRecord))).toBe(true);
    expect(walk.finalState.get(`md5:${value}`)?.op).toBe("REMOVE");
    expect(walk.newlyApplied.map((a) => a.seq)).toEqual([1, 2, 3]);
  });

  it("stops at a gap: the records before it apply, nothing after it, and the next offset is the halting record's", () => {
    const [r1, , r3, r4] = records([{}, {}, {}, {}]) as [FeedRecord, FeedRecord, FeedRecord, FeedRecord];
    const walk = walkChain(ctx, 0, 0, messages(0, [r1, Buffer.from("junk"), r3, r4]), genesis, new Map());
    expect(walk).toMatchObject({ applied: 1, refused: 2, next: 2, lastSeq: 1 });
    expect(walk.halt).toMatchObject({ seq: 3, offset: 2 });
    expect(walk.alerts.map((a) => [a.offset, a.reason])).toEqual([
      [1, "BAD_MAGIC"],
      [2, "SEQ_GAP"],
    ]);
    expect(walk.finalState.size).toBe(1);
  });

  it("skips an applied seq with the same digest, and alerts one with other content", () => {
    const [r1, r2] = records([{}, {}]) as [FeedRecord, FeedRecord];
    const applied = new Map([[1, feedRecordDigest(type, r1)]]);
    const state = { lastSeq: 1, lastDigest: feedRecordDigest(type, r1), bootstrapSeq: 0, judgedTo: 0 };
    const other = records([{}])[0] as FeedRecord;
    const walk = walkChain(ctx, 0, 5, messages(5, [r1, other, r2]), state, applied);
    expect(walk).toMatchObject({ applied: 1, duplicates: 1, refused: 1, next: 8, lastSeq: 2 });
    expect(walk.alerts.map((a) => a.reason)).toEqual(["SEQ_REORDER"]);
    expect(applied.has(2)).toBe(true);
  });
});

/** The chain-signed form of a record: the same bytes and digest, no signature of its own. */
const unsigned = (r: FeedRecord): FeedRecord => ({ ...r, signature: Buffer.alloc(0) });
const headAt = (r: FeedRecord, judgedTo = 0) => ({ lastSeq: r.seq, lastDigest: feedRecordDigest(type, r), bootstrapSeq: 0, judgedTo });
const reasons = (walk: { alerts: { offset: number; reason: string }[] }) => walk.alerts.map((a) => [a.offset, a.reason]);

describe("walking the chain-signed form", () => {
  it("applies an unsigned run once the signed record after it verifies and links back to the chain head", () => {
    const rs = records([{}, {}, {}, {}]);
    const batch = [...rs.slice(0, 3).map(unsigned), rs[3] as FeedRecord];
    const walk = walkChain(ctx, 0, 20, messages(20, batch), genesis, new Map());
    expect(walk).toMatchObject({ applied: 4, refused: 0, next: 24, lastSeq: 4, halt: null, judgedTo: 24 });
    expect(walk.newlyApplied.map((a) => a.seq)).toEqual([1, 2, 3, 4]);
    expect(walk.lastDigest.equals(feedRecordDigest(type, rs[3] as FeedRecord))).toBe(true);
  });

  it("leaves an unsigned tail without its signed record to be read again, alerting the records read with it once", () => {
    const [r1, r2, r3, r4] = records([{}, {}, {}, {}]) as [FeedRecord, FeedRecord, FeedRecord, FeedRecord];
    const first = walkChain(ctx, 0, 0, messages(0, [r1, unsigned(r2), Buffer.from("junk"), unsigned(r3)]), genesis, new Map());
    expect(first).toMatchObject({ applied: 1, refused: 1, next: 1, lastSeq: 1, halt: null, judgedTo: 4 });
    expect(reasons(first)).toEqual([[2, "BAD_MAGIC"]]);
    // Read again from offset 1 with the signed record that came since: applied, and the junk not alerted twice.
    const applied = new Map(first.newlyApplied.map((a) => [a.seq, a.digest]));
    const again = walkChain(ctx, 0, 1, messages(1, [unsigned(r2), Buffer.from("junk"), unsigned(r3), r4]), headAt(r1, 4), applied);
    expect(again).toMatchObject({ applied: 3, refused: 0, next: 5, lastSeq: 4, halt: null, judgedTo: 5 });
    expect(again.newlyApplied.map((a) => a.seq)).toEqual([2, 3, 4]);
  });

  it("refuses a tampered unsigned record inside a run and applies nothing of the run; after a resume the rest applies", () => {
    const [r1, r2, r3, r4] = records([{}, {}, {}, {}]) as [FeedRecord, FeedRecord, FeedRecord, FeedRecord];
    const tampered = { ...unsigned(r2), category: "C" };
    const walk = walkChain(ctx, 0, 0, messages(0, [unsigned(r1), tampered, unsigned(r3), r4]), genesis, new Map());
    expect(walk).toMatchObject({ applied: 0, next: 2, lastSeq: 0 });
    expect(walk.finalState.size).toBe(0);
    // r4 verifies and links to r3; r3's prevDigest is r2's digest, which the tampered record does not have.
    expect(reasons(walk)).toEqual([
      [0, "BAD_SIGNATURE"],
      [1, "BAD_SIGNATURE"],
      [2, "SEQ_GAP"],
    ]);
    expect(walk.halt).toMatchObject({ seq: 3, offset: 2, reason: "SEQ_GAP: expected seq 1, got 3" });
    expect(walk.halt?.prevDigest.equals(feedRecordDigest(type, r2))).toBe(true);
    // `hashrelay-sink resume --accept-gap` sets the head to (2, the halting record's prevDigest).
    const resumed = { lastSeq: 2, lastDigest: walk.halt?.prevDigest as Buffer, bootstrapSeq: 0, judgedTo: walk.judgedTo };
    const next = walkChain(ctx, 0, 2, messages(2, [unsigned(r3), r4]), resumed, new Map());
    expect(next).toMatchObject({ applied: 2, refused: 0, lastSeq: 4, halt: null });
  });

  it("halts on CHAIN_BROKEN when an authenticated run does not continue this database's chain", () => {
    const [r1, r2, r3] = records([{}, {}, {}]) as [FeedRecord, FeedRecord, FeedRecord];
    const elsewhere = { lastSeq: 1, lastDigest: Buffer.alloc(32, 7), bootstrapSeq: 0, judgedTo: 0 };
    const walk = walkChain(ctx, 0, 9, messages(9, [unsigned(r2), r3]), elsewhere, new Map([[1, feedRecordDigest(type, r1)]]));
    expect(walk).toMatchObject({ applied: 0, next: 9 });
    expect(walk.halt).toMatchObject({ seq: 2, offset: 9, reason: "CHAIN_BROKEN: seq 2: prevDigest does not match the chain" });
    expect(reasons(walk)).toEqual([[9, "CHAIN_BROKEN"]]);
  });

  it("refuses a forged unsigned record the signed record's chain passes over; the genuine run applies", () => {
    const [r1, r2] = records([{}, {}]) as [FeedRecord, FeedRecord];
    const forged = { ...unsigned(r1), value: randomHex(16) };
    const walk = walkChain(ctx, 0, 0, messages(0, [forged, unsigned(r1), r2]), genesis, new Map());
    expect(walk).toMatchObject({ applied: 2, refused: 1, next: 3, lastSeq: 2, halt: null });
    expect(reasons(walk)).toEqual([[0, "BAD_SIGNATURE"]]);
    expect(walk.finalState.has(`md5:${forged.value}`)).toBe(false);
  });

  it("skips duplicates: copies inside a run and a run delivered again after it applied", () => {
    const rs = records([{}, {}, {}]) as [FeedRecord, FeedRecord, FeedRecord];
    const [u1, u2] = [unsigned(rs[0]), unsigned(rs[1])];
    // An outbox relay sending part of a transaction twice.
    const walk = walkChain(ctx, 0, 0, messages(0, [u1, u2, u1, u2, rs[2]]), genesis, new Map());
    expect(walk).toMatchObject({ applied: 3, duplicates: 2, refused: 0, next: 5, lastSeq: 3 });
    const applied = new Map(walk.newlyApplied.map((a) => [a.seq, a.digest]));
    const again = walkChain(ctx, 0, 5, messages(5, [u1, u2, rs[2]]), headAt(rs[2], 5), applied);
    expect(again).toMatchObject({ applied: 0, duplicates: 3, refused: 0, next: 8, lastSeq: 3 });
    // Other content at an applied seq, unsigned, is a reorder as for a signed record.
    const other = unsigned(records([{}])[0] as FeedRecord);
    expect(reasons(walkChain(ctx, 0, 8, messages(8, [other]), headAt(rs[2], 8), applied))).toEqual([[8, "SEQ_REORDER"]]);
  });

  it("mixes the forms: signed records apply on their own, unsigned ones with the signed record after them", () => {
    const rs = records([{}, {}, {}, {}, {}]) as FeedRecord[];
    const batch = [rs[0], unsigned(rs[1] as FeedRecord), rs[2], rs[3], unsigned(rs[4] as FeedRecord)] as FeedRecord[];
    const walk = walkChain(ctx, 0, 0, messages(0, batch), genesis, new Map());
    expect(walk).toMatchObject({ applied: 4, refused: 0, next: 4, lastSeq: 4, halt: null });
  });

  it("does not wait for an unsigned record no signed record can reach: the hub signs every multiple of 256", () => {
    const far = unsigned(records([{ seq: CHAIN_SIGNING_INTERVAL + 3 }])[0] as FeedRecord);
    const near = unsigned(records([{}])[0] as FeedRecord);
    const walk = walkChain(ctx, 0, 0, messages(0, [far]), genesis, new Map());
    expect(walk).toMatchObject({ applied: 0, next: 1 });
    expect(reasons(walk)).toEqual([[0, "BAD_SIGNATURE"]]);
    expect(walkChain(ctx, 0, 0, messages(0, [near]), genesis, new Map())).toMatchObject({ applied: 0, refused: 0, next: 0 });
  });

  it("alerts a signed record it cannot verify at once, keeps the run waiting, and applies it once the key is trusted", () => {
    const other = generateSigningKeyPair();
    const [r1, r2] = records([{}, {}]) as [FeedRecord, FeedRecord];
    const newKey = signRecord("FeedRecord", type, { ...r2, keyId: "hub:2" }, privateKeyFromPem(other.privateKeyPem));
    const batch = messages(0, [unsigned(r1), newKey]);
    const walk = walkChain(ctx, 0, 0, batch, genesis, new Map());
    expect(walk).toMatchObject({ applied: 0, next: 0, judgedTo: 2 });
    expect(reasons(walk)).toEqual([[1, "UNKNOWN_KEY"]]);
    // Read again with nothing new: not alerted twice.
    expect(walkChain(ctx, 0, 0, batch, { ...genesis, judgedTo: 2 }, new Map())).toMatchObject({ applied: 0, refused: 0, next: 0 });
    const rotated = { ...ctx, keys: [...ctx.keys, { keyId: "hub:2", publicKey: publicKeyFromRaw(other.publicKey), validUntil: null }] };
    expect(walkChain(rotated, 0, 0, batch, { ...genesis, judgedTo: 2 }, new Map())).toMatchObject({ applied: 2, refused: 0, next: 2 });
  });
});
