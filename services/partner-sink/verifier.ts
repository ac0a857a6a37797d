/**
 * What a partner checks before a feed record touches its database: the hub signature with a
 * trusted, current hub key; that the record is for this partner and partition; and that seq and
 * prevDigest continue the partition's chain. An unsigned record of the chain-signed form has only
 * its partner and partition checked here: chain-walk.ts applies it once a record that passed these
 * checks links back to it. Pure, so every refusal path is unit-tested.
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

export type Refusal = { readonly kind: "refuse"; readonly reason: ReasonCode; readonly detail: string; readonly halt: boolean };

export type Verdict = { readonly kind: "apply"; readonly digest: Buffer } | { readonly kind: "duplicate" } | Refusal;

/** Whose feed partition a record is checked for, with which hub keys, and when. */
export interface RecordContext {
  readonly partnerId: string;
  readonly partition: number;
  readonly keys: readonly TrustedHubKey[];
  readonly now: Date;
}

/** A signed record on its own: a trusted hub key, current now, a signature that verifies, this partner and partition. */
export function checkSigned(record: FeedRecord, writerType: avro.Type, context: RecordContext): Refusal | null {
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
  return checkDestination(record, context);
}

/**
 * An unsigned record of the chain-signed form on its own: only this partner and partition can be
 * checked; it is authenticated later, or never, by a signed record whose chain links back to it.
 */
export function checkUnsigned(record: FeedRecord, context: Pick<RecordContext, "partnerId" | "partition">): Refusal | null {
  return checkDestination(record, context);
}

function checkDestination(record: FeedRecord, context: Pick<RecordContext, "partnerId" | "partition">): Refusal | null {
  if (record.partnerId !== context.partnerId || record.partition !== context.partition) {
    return {
      kind: "refuse",
      reason: "INVALID_FIELD",
      detail: `record for ${record.partnerId}/${record.partition} on ${context.partnerId}/${context.partition}`,
      halt: false,
    };
  }
  return null;
}

/**
 * Where a record with this digest stands against the chain: at or before the last applied seq it
 * is a duplicate (the same digest was applied there, or a snapshot covered it) or a reorder; just
 * after it, it applies if prevDigest continues the chain; further on it is a gap. For a signed
 * record only once checkSigned passed; for an unsigned one, only at or before the chain head (past
 * it, it waits for a signed record: chain-walk.ts).
 */
export function placeOnChain(record: FeedRecord, digest: Buffer, state: ChainState, appliedDigest?: Buffer): Verdict {
  if (record.seq <= state.lastSeq) {
    if (appliedDigest?.equals(digest)) return { kind: "duplicate" };
    // Already covered by the signed snapshot this partner started from.
    if (!appliedDigest && record.seq <= (state.bootstrapSeq ?? 0)) return { kind: "duplicate" };
    return {
      kind: "refuse",
      reason: "SEQ_REORDER",
      detail: `seq ${record.seq} arrived after ${state.lastSeq} with different content${record.signature.length ? "" : " (unsigned)"}`,
      halt: false,
    };
  }
  if (record.seq > state.lastSeq + 1) {
    return { kind: "refuse", reason: "SEQ_GAP", detail: `expected seq ${state.lastSeq + 1}, got ${record.seq}`, halt: true };
  }
  if (!record.prevDigest.equals(state.lastDigest)) {
    return { kind: "refuse", reason: "CHAIN_BROKEN", detail: `seq ${record.seq}: prevDigest does not match the chain`, halt: true };
  }
  return { kind: "apply", digest };
}

/** One signed record judged on its own against the chain (every-record form): checkSigned, then placeOnChain. */
export function verifyFeedRecord(
  record: FeedRecord,
  writerType: avro.Type,
  context: RecordContext & { state: ChainState; appliedDigest?: Buffer },
): Verdict {
  return (
    checkSigned(record, writerType, context) ??
    placeOnChain(record, feedRecordDigest(writerType, record), context.state, context.appliedDigest)
  );
}
