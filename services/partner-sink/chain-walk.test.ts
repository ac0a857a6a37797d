import { describe, expect, it } from "vitest";
import { randomHex } from "../../test/support/fixtures.ts";
import { createLogger } from "../shared/logging.ts";
import { AvroCodec } from "../shared/wire/codec.ts";
import { GENESIS_DIGEST, feedRecordDigest } from "../shared/wire/feed-chain.ts";
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
const genesis = { lastSeq: 0, lastDigest: GENESIS_DIGEST, bootstrapSeq: 0 };

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
    const state = { lastSeq: 1, lastDigest: feedRecordDigest(type, r1), bootstrapSeq: 0 };
    const other = records([{}])[0] as FeedRecord;
    const walk = walkChain(ctx, 0, 5, messages(5, [r1, other, r2]), state, applied);
    expect(walk).toMatchObject({ applied: 1, duplicates: 1, refused: 1, next: 8, lastSeq: 2 });
    expect(walk.alerts.map((a) => a.reason)).toEqual(["SEQ_REORDER"]);
    expect(applied.has(2)).toBe(true);
  });
});
