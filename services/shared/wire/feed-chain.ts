/**
 * The hash chain of a partner feed partition: each FeedRecord carries a contiguous seq and the
 * SHA-256 of the previous record's signed bytes, so a partner detects a gap, a reorder or a
 * tampered record. Shared by distribution (which extends chains) and partner-sink (which checks).
 *
 * Frozen contract: partners recompute these digests and partitions. Changing the digest input or
 * the partition function breaks every partner's chain check; a new chain form needs a new
 * FeedRecord schema version in schemas/history/ and a new signing domain in signing.ts.
 */
import { createHash } from "node:crypto";
import type avro from "avsc";
import type { FeedRecord } from "./records.ts";
import { signingBytes } from "./signing.ts";

export const GENESIS_DIGEST = Buffer.alloc(32);

/** Digest that the next record's prevDigest must equal. */
export function feedRecordDigest(writerType: avro.Type, record: FeedRecord): Buffer {
  return createHash("sha256")
    .update(signingBytes("FeedRecord", writerType, record))
    .digest();
}

/** Which feed partition a hash goes to: stable, so every change to a hash stays in order. */
export function feedPartitionOf(alg: string, value: string, partitions: number): number {
  const h = createHash("sha256").update(`${alg}:${value}`).digest();
  return h.readUInt32BE(0) % partitions;
}
