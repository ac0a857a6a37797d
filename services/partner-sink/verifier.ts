/**
 * What a partner checks before a feed record touches its database: the hub signature with a
 * trusted, current hub key; that the record is for this partner and partition; and that seq and
 * prevDigest continue the partition's chain. Pure, so every refusal path is unit-tested.
 */
import type { KeyObject } from "node:crypto";
import type avro from "avsc";
import type { ReasonCode } from "../shared/errors.ts";
import { feedRecordDigest } from "../shared/wire/feed-chain.ts";
import type { FeedRecord } from "../shared/wire/records.ts";
import { publicKeyFromRaw, signatureMatches } from "../shared/wire/signing.ts";

export interface TrustedHubKey {
  readonly keyId: string;
  readonly publicKey: KeyObject;
  readonly validUntil: Date | null;
}

/** Parses HUB_PUBLIC_KEYS: "keyId=base64[@ISO-until],keyId2=base64" (two during a rotation). */
export function parseTrustedHubKeys(spec: string): TrustedHubKey[] {
  return spec
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry) => {
      const eq = entry.indexOf("=");
      if (eq < 1) throw new Error(`hub key entry ${JSON.stringify(entry)} must be keyId=base64`);
      const keyId = entry.slice(0, eq);
      const [b64, until] = entry.slice(eq + 1).split("@");
      return { keyId, publicKey: publicKeyFromRaw(Buffer.from(b64 ?? "", "base64")), validUntil: until ? new Date(until) : null };
    });
}

export interface ChainState {
  readonly lastSeq: number;
  readonly lastDigest: Buffer;
  /** Seq up to which the partition came from a signed snapshot (0 when it did not). */
  readonly bootstrapSeq?: number;
}

export type Verdict =
  | { readonly kind: "apply"; readonly digest: Buffer }
  | { readonly kind: "duplicate" }
  | { readonly kind: "refuse"; readonly reason: ReasonCode; readonly detail: string; readonly halt: boolean };

export function verifyFeedRecord(
  record: FeedRecord,
  writerType: avro.Type,
  context: { partnerId: string; partition: number; keys: readonly TrustedHubKey[]; state: ChainState; appliedDigest?: Buffer; now: Date },
): Verdict {
  const key = context.keys.find((k) => k.keyId === record.keyId);
  if (!key) return { kind: "refuse", reason: "UNKNOWN_KEY", detail: `hub key ${record.keyId} is not trusted`, halt: false };
  if (key.validUntil && key.validUntil <= context.now) {
    return {
      kind: "refuse",
      reason: "KEY_EXPIRED",
      detail: `hub key ${record.keyId} expired ${key.validUntil.toISOString()}`,
      halt: false,
    };
  }
  if (!signatureMatches("FeedRecord", writerType, record, key.publicKey)) {
    return { kind: "refuse", reason: "BAD_SIGNATURE", detail: `seq ${record.seq}: hub signature does not verify`, halt: false };
  }
  if (record.partnerId !== context.partnerId || record.partition !== context.partition) {
    return {
      kind: "refuse",
      reason: "INVALID_FIELD",
      detail: `record for ${record.partnerId}/${record.partition} on ${context.partnerId}/${context.partition}`,
      halt: false,
    };
  }
  const digest = feedRecordDigest(writerType, record);
  if (record.seq <= context.state.lastSeq) {
    if (context.appliedDigest?.equals(digest)) return { kind: "duplicate" };
    // Hub-signed and already covered by the snapshot this partner started from.
    if (!context.appliedDigest && record.seq <= (context.state.bootstrapSeq ?? 0)) return { kind: "duplicate" };
    return {
      kind: "refuse",
      reason: "SEQ_REORDER",
      detail: `seq ${record.seq} arrived after ${context.state.lastSeq} with different content`,
      halt: false,
    };
  }
  if (record.seq > context.state.lastSeq + 1) {
    return { kind: "refuse", reason: "SEQ_GAP", detail: `expected seq ${context.state.lastSeq + 1}, got ${record.seq}`, halt: true };
  }
  if (!record.prevDigest.equals(context.state.lastDigest)) {
    return { kind: "refuse", reason: "CHAIN_BROKEN", detail: `seq ${record.seq}: prevDigest does not match the chain`, halt: true };
  }
  return { kind: "apply", digest };
}
