/**
 * Which hash keys a submission on hashes.submitted.v1. Every submission about the same image
 * must land on the same partition so dedup sees them in order; forensic exports nearly always
 * carry MD5, so the preference runs from the most to the least commonly present algorithm.
 */
import type { Hash, HashAlg } from "../shared/wire/records.ts";

const PREFERENCE: HashAlg[] = ["md5", "sha1", "sha256", "pdq", "photodna"];

export function partitionKey(hashes: readonly Hash[]): string {
  for (const alg of PREFERENCE) {
    const hash = hashes.find((h) => h.alg === alg);
    if (hash) return `${alg}:${hash.value}`;
  }
  throw new Error("a submission without hashes has no partition key");
}
