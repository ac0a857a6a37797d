/**
 * The hash algorithms a submission may carry, one entry each: name, value form and normalisation,
 * exact or near match (with the near-match rule and its constants), partition-key preference, and
 * how the force-side file readers name it. Validation, partition keys, the VICS and CSV readers, the
 * dedup linker, the partner lookup and the admin CLI read from this table; none keeps its own list.
 *
 * Part of the submission contract: agencies sign the canonical values this table produces, and
 * partners look hashes up by them. Changing a pattern, a normalisation, a name or the partition-key
 * order breaks stored signatures, partition placement or partners' lookups. Never change an entry:
 * a new algorithm (vPDQ, TMK) is a new entry, a new value in the schemas' HashAlg enum (a new schema
 * version in schemas/history/), and, when it matches by nearness, its index in
 * services/dedup/near-duplicates/.
 *
 * Invariant: the entries are exactly the schemas' HashAlg values, in their order (the test beside
 * this file checks it). Nothing here depends on a service.
 */
import type { HashAlg } from "./records.ts";

/**
 * How an algorithm matches. "exact": a shared value is the same file; the cryptographic digests
 * join submissions into one canonical record. "near": perceptual; close values are linked as near
 * duplicates and never joined.
 */
export type MatchKind = "exact" | "near";

export interface ExactMatch {
  readonly kind: "exact";
}

/** Near match by Hamming distance over the hash's bits: a match when distance <= maxDistance. */
export interface HammingMatch {
  readonly kind: "near";
  readonly distance: "hamming";
  readonly maxDistance: number;
}

/**
 * Near match by squared Euclidean distance over the hash's byte values: a match when
 * distance < threshold. The hub's configuration supplies the threshold; defaultThreshold is a
 * starting point only.
 */
export interface SquaredEuclideanMatch {
  readonly kind: "near";
  readonly distance: "squared-euclidean";
  readonly defaultThreshold: number;
}

export type NearMatch = HammingMatch | SquaredEuclideanMatch;

/** The optional quality score a hash of this algorithm may carry (PDQ's 0-100). */
export interface QualityRule {
  readonly min: number;
  readonly max: number;
  /** Hashes whose quality is below this carry no signal: kept out of near matching. */
  readonly minForMatching: number;
  /** Column of the force-side CSV reader that carries it. */
  readonly csvColumn: string;
  /** VICS media property that carries it (matched ignoring case, "_", "-" and spaces). */
  readonly vicsProperty: string;
}

/** A value normalised, or what is wrong with it (text that names the algorithm and the problem). */
export type Normalised = { readonly ok: true; readonly value: string } | { readonly ok: false; readonly problem: string };

export interface HashAlgorithm {
  readonly name: HashAlg;
  /** Length of the hash in bytes. */
  readonly bytes: number;
  /** Wire encoding of the canonical value: lower-case hex, or standard padded base64. */
  readonly encoding: "hex" | "base64";
  /** The canonical value, as a signed submission and a feed carry it. */
  readonly pattern: RegExp;
  /** The canonical value in words, for error text and documentation. */
  readonly description: string;
  readonly match: ExactMatch | NearMatch;
  /** Position in the partition-key preference (1 first): see PARTITION_KEY_ORDER. */
  readonly partitionKeyRank: number;
  /** The optional quality score, or null when the algorithm has none. */
  readonly quality: QualityRule | null;
  /** Licensed algorithms are left out of a new partner policy unless asked for. */
  readonly licensed: boolean;
  /**
   * The VICS media property that carries it (matched ignoring case, "_", "-" and spaces), and its
   * position among a media item's hash properties: drafts read from VICS list hashes in that order.
   */
  readonly vics: { readonly property: string; readonly position: number };
  /** The canonical value for what a submitter sent (trimmed; see the encodings' normalisers). */
  normalise(value: string): Normalised;
}

/**
 * `s` without its trailing "=" padding. Not `s.replace(/=+$/, "")`: V8 retries that regex from
 * every "=" of a run that is not at the end, which is quadratic on hostile input.
 */
function stripBase64Padding(s: string): string {
  let end = s.length;
  while (end > 0 && s.charCodeAt(end - 1) === 0x3d) end--;
  return end === s.length ? s : s.slice(0, end);
}

/** Hex of `bytes` bytes: upper case accepted and lowered. */
function hexNormaliser(name: HashAlg, bytes: number): (value: string) => Normalised {
  const want = bytes * 2;
  return (value) => {
    const v = value.trim();
    const bad = /[^0-9a-fA-F]/.exec(v);
    if (bad) return { ok: false, problem: `${name} must be hexadecimal; found ${JSON.stringify(bad[0])} at position ${bad.index}` };
    if (v.length !== want) return { ok: false, problem: `${name} must be ${want} hex characters, got ${v.length}` };
    return { ok: true, value: v.toLowerCase() };
  };
}

/** Base64 of `bytes` bytes, standard or URL-safe, padded or not; or 2 x bytes hex characters. Gives standard padded base64. */
function base64Normaliser(name: HashAlg, bytes: number): (value: string) => Normalised {
  const base64Chars = Math.ceil((bytes * 4) / 3);
  const hexChars = bytes * 2;
  return (value) => {
    const v = value.trim();
    if (v.length === hexChars && /^[0-9a-fA-F]+$/.test(v)) return { ok: true, value: Buffer.from(v, "hex").toString("base64") };
    const unpadded = stripBase64Padding(v);
    if (/^[A-Za-z0-9+/_-]+$/.test(unpadded) && unpadded.length === base64Chars) {
      // Node decodes both alphabets; re-encoding gives standard base64.
      return { ok: true, value: Buffer.from(unpadded, "base64").toString("base64") };
    }
    if (/^[A-Za-z0-9+/_-]*={0,2}$/.test(v) && v.length > 0) {
      const got = Math.floor((unpadded.length * 3) / 4);
      return { ok: false, problem: `${name} must be ${bytes} bytes, got ${got} (base64 of ${unpadded.length} chars)` };
    }
    return { ok: false, problem: `${name} must be base64 of ${bytes} bytes or ${hexChars} hex characters` };
  };
}

type Entry = Omit<HashAlgorithm, "name" | "bytes" | "encoding" | "pattern" | "description" | "normalise">;

function hex(name: HashAlg, bytes: number, rest: Entry): HashAlgorithm {
  const chars = bytes * 2;
  return {
    name,
    bytes,
    encoding: "hex",
    pattern: new RegExp(`^[0-9a-f]{${chars}}$`),
    description: `${chars} lower-case hex characters`,
    normalise: hexNormaliser(name, bytes),
    ...rest,
  };
}

function base64(name: HashAlg, bytes: number, rest: Entry): HashAlgorithm {
  const chars = Math.ceil(bytes / 3) * 4;
  const padding = chars - Math.ceil((bytes * 4) / 3);
  return {
    name,
    bytes,
    encoding: "base64",
    pattern: new RegExp(`^[A-Za-z0-9+/]{${chars - padding}}${padding ? `={${padding}}` : ""}$`),
    description: `standard base64 of ${bytes} bytes (${chars} characters)`,
    normalise: base64Normaliser(name, bytes),
    ...rest,
  };
}

const EXACT: ExactMatch = { kind: "exact" };

/** Every algorithm, in the schemas' HashAlg order. */
export const HASH_ALGORITHMS: readonly HashAlgorithm[] = [
  hex("md5", 16, { match: EXACT, partitionKeyRank: 1, quality: null, licensed: false, vics: { property: "MD5", position: 1 } }),
  hex("sha1", 20, { match: EXACT, partitionKeyRank: 2, quality: null, licensed: false, vics: { property: "SHA1", position: 2 } }),
  hex("sha256", 32, { match: EXACT, partitionKeyRank: 3, quality: null, licensed: false, vics: { property: "SHA256", position: 3 } }),
  hex("pdq", 32, {
    match: { kind: "near", distance: "hamming", maxDistance: 31 },
    partitionKeyRank: 4,
    quality: { min: 0, max: 100, minForMatching: 50, csvColumn: "pdq_quality", vicsProperty: "PDQQuality" },
    licensed: false,
    vics: { property: "PDQ", position: 5 },
  }),
  base64("photodna", 144, {
    match: { kind: "near", distance: "squared-euclidean", defaultThreshold: 1800 },
    partitionKeyRank: 5,
    quality: null,
    licensed: true,
    vics: { property: "PhotoDNA", position: 4 },
  }),
];

const BY_NAME: ReadonlyMap<string, HashAlgorithm> = new Map(HASH_ALGORITHMS.map((a) => [a.name, a]));

/** Every algorithm name, in table order. */
export const HASH_ALGORITHM_NAMES: readonly HashAlg[] = HASH_ALGORITHMS.map((a) => a.name);

/** True when `alg` names an algorithm in the table (exactly: no trimming or case folding). */
export function isHashAlg(alg: unknown): alg is HashAlg {
  return typeof alg === "string" && BY_NAME.has(alg);
}

/** The entry for an algorithm; a name outside the table is a bug here (check input with isHashAlg). */
export function hashAlgorithm(alg: HashAlg): HashAlgorithm {
  const a = BY_NAME.get(alg);
  if (!a) throw new Error(`no hash algorithm ${JSON.stringify(alg)} in the table`);
  return a;
}

/** The cryptographic algorithms: a shared value joins records; one image has one value of each. */
export const EXACT_ALGORITHMS: readonly HashAlg[] = HASH_ALGORITHMS.filter((a) => a.match.kind === "exact").map((a) => a.name);

/** The perceptual algorithms: linked as near duplicates, never joined. */
export const NEAR_ALGORITHMS: readonly HashAlg[] = HASH_ALGORITHMS.filter((a) => a.match.kind === "near").map((a) => a.name);

/** Algorithms whose hashes may carry a quality score. */
export const QUALITY_ALGORITHMS: readonly HashAlg[] = HASH_ALGORITHMS.filter((a) => a.quality !== null).map((a) => a.name);

/** The algorithms a partner policy gets unless it asks otherwise: all but the licensed ones. */
export const UNLICENSED_ALGORITHMS: readonly HashAlg[] = HASH_ALGORITHMS.filter((a) => !a.licensed).map((a) => a.name);

/** Algorithms that need a licence. */
export const LICENSED_ALGORITHMS: readonly HashAlg[] = HASH_ALGORITHMS.filter((a) => a.licensed).map((a) => a.name);

/**
 * Which hash keys a submission on hashes.submitted.v1, most preferred first. Forensic exports
 * nearly always carry MD5, so the order runs from the most to the least commonly present.
 */
export const PARTITION_KEY_ORDER: readonly HashAlg[] = [...HASH_ALGORITHMS]
  .sort((x, y) => x.partitionKeyRank - y.partitionKeyRank)
  .map((a) => a.name);

/** The near-match rule of a near algorithm; a bug to ask for an exact one's. */
export function nearMatch(alg: HashAlg): NearMatch {
  const m = hashAlgorithm(alg).match;
  if (m.kind !== "near") throw new Error(`${alg} matches exactly, not by nearness`);
  return m;
}

/**
 * True when a hash takes part in near matching: a near algorithm, and a quality (where it has one)
 * not below the algorithm's minimum. A hash without a quality score is matched.
 */
export function isNearMatchable(h: { readonly alg: HashAlg; readonly quality: number | null }): boolean {
  const a = BY_NAME.get(h.alg);
  if (a?.match.kind !== "near") return false;
  return a.quality === null || h.quality === null || h.quality >= a.quality.minForMatching;
}

/**
 * The value as the partner's store holds it, without checking it: hex compares case-insensitively
 * (lowered); base64 is case-sensitive (as given).
 */
export function canonicalCase(alg: HashAlg, value: string): string {
  return hashAlgorithm(alg).encoding === "hex" ? value.toLowerCase() : value;
}
