/**
 * Degenerate perceptual values: hashes of a near algorithm that carry no signal about which picture
 * they came from, so they are kept out of near-duplicate matching and out of every partner feed.
 * Pure; the rules read the hash algorithm table (services/shared/wire/hash-algorithms.ts) and name
 * no algorithm.
 *
 * - LOW_QUALITY: a quality under the algorithm's minimum for matching (isNearMatchable).
 * - CONSTANT: every component of the value equal: every bit for a Hamming-distance hash (all-zero or
 *   all-one), every byte for a Euclidean one. Flat or blank pictures and tools' placeholders give these.
 * - SHARED: one value on at least the configured number of distinct canonical records, i.e. attached
 *   to that many distinct cryptographic identities. Decided from counts, not from the value alone.
 *
 * Invariant: an exact (cryptographic) hash is never degenerate; a value's reason never changes once
 * it is degenerate (the store keeps the first), so a value leaves the feeds once and stays out.
 */
import { hashAlgorithm, isNearMatchable } from "../shared/wire/hash-algorithms.ts";
import type { HashAlgorithm } from "../shared/wire/hash-algorithms.ts";
import type { DegenerateReason, Hash } from "../shared/wire/records.ts";

/** Default for DEDUP_DEGENERATE_PERCEPTUAL_RECORDS: distinct records one perceptual value may sit on before it is SHARED. */
export const DEFAULT_DEGENERATE_PERCEPTUAL_RECORDS = 5;

function isConstant(a: HashAlgorithm, value: string): boolean {
  const bytes = Buffer.from(value, a.encoding);
  if (bytes.length === 0 || a.match.kind !== "near") return false;
  if (a.match.distance === "hamming") return bytes.every((b) => b === 0) || bytes.every((b) => b === 0xff);
  return bytes.every((b) => b === bytes[0]);
}

/** Why a hash is degenerate by its value and quality alone, or null (always null for an exact algorithm). */
export function intrinsicDegeneracy(h: Pick<Hash, "alg" | "value" | "quality">): DegenerateReason | null {
  const a = hashAlgorithm(h.alg);
  if (a.match.kind !== "near") return null;
  if (!isNearMatchable(h)) return "LOW_QUALITY";
  if (isConstant(a, h.value)) return "CONSTANT";
  return null;
}

/** Whether a near value carried by `records` distinct canonical records is SHARED under the threshold. */
export const isSharedByMany = (records: number, threshold: number): boolean => records >= threshold;

/** At most this many characters of a value in logs and operator listings: enough to find it, not the whole hash. */
export const VALUE_PREFIX_CHARS = 12;

export const valuePrefix = (value: string): string =>
  value.length > VALUE_PREFIX_CHARS ? `${value.slice(0, VALUE_PREFIX_CHARS)}…` : value;
