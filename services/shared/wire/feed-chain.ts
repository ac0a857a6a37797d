/**
 * The hash chain of a partner feed partition: each FeedRecord carries a contiguous seq and the
 * SHA-256 of the previous record's signed bytes, so a partner detects a gap, a reorder or a
 * tampered record. Shared by distribution (which extends chains) and partner-sink (which checks).
 *
 * Because prevDigest is inside the signed bytes, a record whose signature verifies vouches for the
 * record before it, and through that one's prevDigest for the whole chain back to the partner's
 * last applied record. The chain-signed feed form rests on that: the hub may leave `signature`
 * empty (0 bytes) on a record, which is then authenticated by the next signed record of its
 * partition whose chain links back to it. The hub signs the last record of each partition in each
 * transaction that writes to it, and every record whose seq is a multiple of CHAIN_SIGNING_INTERVAL,
 * so a partition's committed head is always signed and no run of unsigned records is longer than
 * CHAIN_SIGNING_INTERVAL - 1. The signed bytes, the digest and the record schema are the same in
 * both forms; a signature that is present is always verified on its own.
 *
 * Frozen contract: partners recompute these digests and partitions and rely on the signing rule
 * above. Changing the digest input, the partition function or the interval breaks every partner's
 * chain check; a new chain form needs a new FeedRecord schema version in schemas/history/ and a new
 * signing domain in signing.ts.
 */
import { createHash } from "node:crypto";
import type avro from "avsc";
import type { FeedRecord } from "./records.ts";
import { signingBytes } from "./signing.ts";
import type { Unsigned } from "./signing.ts";

export const GENESIS_DIGEST = Buffer.alloc(32);

/** Digest that the next record's prevDigest must equal; the signature is not part of it. */
export function feedRecordDigest(writerType: avro.Type, record: FeedRecord | Unsigned<FeedRecord>): Buffer {
  return createHash("sha256")
    .update(signingBytes("FeedRecord", writerType, record))
    .digest();
}

/** Which feed partition a hash goes to: stable, so every change to a hash stays in order. */
export function feedPartitionOf(alg: string, value: string, partitions: number): number {
  const h = createHash("sha256").update(`${alg}:${value}`).digest();
  return h.readUInt32BE(0) % partitions;
}

/** In the chain-signed form the hub signs every record whose seq is a multiple of this. */
export const CHAIN_SIGNING_INTERVAL = 256;

/** True when the hub signs this record in the chain-signed form: the partition's last in its transaction, or a multiple of the interval. */
export function chainSignsRecord(seq: number, lastOfTransaction: boolean): boolean {
  return lastOfTransaction || seq % CHAIN_SIGNING_INTERVAL === 0;
}

/** A record of the chain-signed form without a signature of its own (an empty `signature`). */
export function isChainAuthenticated(record: Pick<FeedRecord, "signature">): boolean {
  return record.signature.length === 0;
}

/**
 * Whether an unsigned record at `seq` can still be authenticated by a signed record yet to come,
 * when the partner's chain head is at `headSeq` and every genuine record up to it has been read:
 * not when a multiple of the interval lies in (headSeq, seq], since that record is always signed
 * and would have moved the head.
 */
export function stillAuthenticable(headSeq: number, seq: number): boolean {
  return seq > headSeq && Math.floor(seq / CHAIN_SIGNING_INTERVAL) === Math.floor(headSeq / CHAIN_SIGNING_INTERVAL);
}
