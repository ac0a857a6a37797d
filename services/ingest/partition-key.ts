/**
 * Which hash keys a submission on hashes.submitted.v1. Every submission about the same image
 * must land on the same partition so dedup sees them in order; the preference between algorithms
 * is PARTITION_KEY_ORDER in the hash algorithm table.
 */
import type { Hash } from "../shared/wire/records.ts";
import { PARTITION_KEY_ORDER } from "../shared/wire/hash-algorithms.ts";

export function partitionKey(hashes: readonly Hash[]): string {
  for (const alg of PARTITION_KEY_ORDER) {
    const hash = hashes.find((h) => h.alg === alg);
    if (hash) return `${alg}:${hash.value}`;
  }
  throw new Error("a submission without hashes has no partition key");
}
