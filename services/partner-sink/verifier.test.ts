import { describe, expect, it } from "vitest";
import { AvroCodec } from "../shared/wire/codec.ts";
import { GENESIS_DIGEST, feedRecordDigest } from "../shared/wire/feed-chain.ts";
import type { FeedRecord } from "../shared/wire/records.ts";
import { generateSigningKeyPair, privateKeyFromPem, publicKeyFromRaw, signRecord } from "../shared/wire/signing.ts";
import { checkSigned, checkUnsigned, parseTrustedHubKeys, placeOnChain, verifyFeedRecord } from "./verifier.ts";
import type { ChainState, TrustedHubKey } from "./verifier.ts";

const codec = new AvroCodec();
const type = codec.schema("FeedRecord").type;
const hub = generateSigningKeyPair();
const hubKey = privateKeyFromPem(hub.privateKeyPem);
const keys: TrustedHubKey[] = [{ keyId: "hub:1", publicKey: publicKeyFromRaw(hub.publicKey), validUntil: null }];
const now = new Date();

function record(seq: number, prevDigest: Buffer, overrides: Partial<FeedRecord> = {}): FeedRecord {
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
      value: "0".repeat(32),
      category: "A",
      contentType: "image",
      revision: 1,
      recordRef: "ref",
      extra: {},
      issuedAt: 1,
      keyId: "hub:1",
      ...overrides,
    },
    hubKey,
  );
}

const check = (r: FeedRecord, state: ChainState, appliedDigest?: Buffer, k = keys) =>
  verifyFeedRecord(r, type, { partnerId: "p1", partition: 0, keys: k, state, ...(appliedDigest ? { appliedDigest } : {}), now });

describe("feed record verification", () => {
  const first = record(1, GENESIS_DIGEST);
  const d1 = feedRecordDigest(type, first);
  const second = record(2, d1);

  it("applies a chain in order", () => {
    expect(check(first, { lastSeq: 0, lastDigest: GENESIS_DIGEST }).kind).toBe("apply");
    expect(check(second, { lastSeq: 1, lastDigest: d1 }).kind).toBe("apply");
  });

  it("skips an identical re-delivery and refuses a different record at an applied seq (reorder)", () => {
    expect(check(first, { lastSeq: 2, lastDigest: d1 }, d1).kind).toBe("duplicate");
    const other = record(1, GENESIS_DIGEST, { value: "1".repeat(32) });
    expect(check(other, { lastSeq: 2, lastDigest: d1 }, d1)).toMatchObject({ kind: "refuse", reason: "SEQ_REORDER", halt: false });
  });

  it("halts on a gap and on a broken chain", () => {
    expect(check(second, { lastSeq: 0, lastDigest: GENESIS_DIGEST })).toMatchObject({ reason: "SEQ_GAP", halt: true });
    const wrongPrev = record(2, Buffer.alloc(32, 9));
    expect(check(wrongPrev, { lastSeq: 1, lastDigest: d1 })).toMatchObject({ reason: "CHAIN_BROKEN", halt: true });
  });

  it("refuses tampering, unknown and expired hub keys, and records for another partner", () => {
    expect(check({ ...first, category: "C" }, { lastSeq: 0, lastDigest: GENESIS_DIGEST })).toMatchObject({ reason: "BAD_SIGNATURE" });
    expect(check({ ...first, keyId: "hub:2" }, { lastSeq: 0, lastDigest: GENESIS_DIGEST })).toMatchObject({ reason: "UNKNOWN_KEY" });
    const expired = [{ ...keys[0], validUntil: new Date(now.getTime() - 1) } as TrustedHubKey];
    expect(check(first, { lastSeq: 0, lastDigest: GENESIS_DIGEST }, undefined, expired)).toMatchObject({ reason: "KEY_EXPIRED" });
    const elsewhere = record(1, GENESIS_DIGEST, { partnerId: "p2" });
    expect(check(elsewhere, { lastSeq: 0, lastDigest: GENESIS_DIGEST })).toMatchObject({ reason: "INVALID_FIELD" });
  });

  it("trusts two hub keys during a rotation", () => {
    const next = generateSigningKeyPair();
    const parsed = parseTrustedHubKeys(
      `hub:1=${hub.publicKey.toString("base64")},hub:2=${next.publicKey.toString("base64")}@2099-01-01T00:00:00Z`,
    );
    const rotated = signRecord("FeedRecord", type, { ...first, keyId: "hub:2" }, privateKeyFromPem(next.privateKeyPem));
    expect(check(first, { lastSeq: 0, lastDigest: GENESIS_DIGEST }, undefined, parsed).kind).toBe("apply");
    expect(check(rotated, { lastSeq: 0, lastDigest: GENESIS_DIGEST }, undefined, parsed).kind).toBe("apply");
  });
});

describe("feed record checks of the chain-signed form", () => {
  const first = record(1, GENESIS_DIGEST);
  const bare = { ...first, signature: Buffer.alloc(0) };

  it("judges an unsigned record on its own only by partner and partition; as a signed one it is refused", () => {
    expect(checkUnsigned(bare, { partnerId: "p1", partition: 0 })).toBeNull();
    expect(checkUnsigned(bare, { partnerId: "p1", partition: 1 })).toMatchObject({ reason: "INVALID_FIELD" });
    expect(checkUnsigned({ ...bare, partnerId: "p2" }, { partnerId: "p1", partition: 0 })).toMatchObject({ reason: "INVALID_FIELD" });
    // A sink that knows only the every-record form refuses it.
    expect(check(bare, { lastSeq: 0, lastDigest: GENESIS_DIGEST })).toMatchObject({ reason: "BAD_SIGNATURE", halt: false });
    expect(checkSigned(bare, type, { partnerId: "p1", partition: 0, keys, now })).toMatchObject({ reason: "BAD_SIGNATURE" });
  });

  it("places a record by seq and digest alone: the signature is not part of the chain", () => {
    const digest = feedRecordDigest(type, bare);
    expect(digest.equals(feedRecordDigest(type, first))).toBe(true);
    expect(placeOnChain(bare, digest, { lastSeq: 0, lastDigest: GENESIS_DIGEST })).toEqual({ kind: "apply", digest });
    expect(placeOnChain(bare, digest, { lastSeq: 1, lastDigest: digest }, digest)).toEqual({ kind: "duplicate" });
    expect(placeOnChain(bare, digest, { lastSeq: 1, lastDigest: digest }, Buffer.alloc(32))).toMatchObject({ reason: "SEQ_REORDER" });
    expect(placeOnChain(bare, digest, { lastSeq: 0, lastDigest: Buffer.alloc(32, 1) })).toMatchObject({
      reason: "CHAIN_BROKEN",
      halt: true,
    });
  });
});
