/**
 * The near-duplicate index port, and the one table that says which index serves which perceptual
 * hash algorithm. The dedup linker programs against NearDuplicateIndex only; an index is pure,
 * in-memory, derived state (rebuilt from PostgreSQL), so an implementation holds no I/O.
 *
 * Invariant: every near algorithm of the hash algorithm table (services/shared/wire/hash-algorithms.ts)
 * has exactly one factory here, and no exact algorithm has one; index.test.ts fails otherwise. A new
 * perceptual algorithm is its table entry, its index class and one line in NEAR_DUPLICATE_INDEXES.
 */
import type { HashAlg } from "../../shared/wire/records.ts";
import { NEAR_ALGORITHMS, nearMatch } from "../../shared/wire/hash-algorithms.ts";
import { PdqIndex } from "./pdq-index.ts";
import { PhotoDnaIndex } from "./photodna-index.ts";

export interface NearDuplicateMatch {
  readonly id: number;
  readonly distance: number;
}

/**
 * Ids are caller-chosen integers in [0, 2^32 - 1]; one id may hold several hashes. query() reports
 * each id within the index's own near-match limit once, at its smallest distance, sorted by distance
 * then id; remove(id) removes all of the id's hashes. Values are in the algorithm's wire form.
 */
export interface NearDuplicateIndex {
  /** Live (not removed) hashes. */
  readonly size: number;
  add(id: number, value: string): void;
  remove(id: number): void;
  query(value: string): NearDuplicateMatch[];
  /** Drops removed hashes and builds whatever the index builds lazily, now rather than on the next query. */
  compact(): void;
  /** Bytes held by the index's storage. */
  memoryBytes(): number;
}

/** What an index is built with: the hub's configured limits, and a size hint. */
export interface NearDuplicateIndexOptions {
  /** PhotoDNA near-match threshold on the squared Euclidean distance (matches have distance < threshold). */
  readonly photodnaThreshold: number;
  /** Expected number of hashes, to pre-size storage. */
  readonly expectedSize?: number;
}

export type NearDuplicateIndexFactory = (options: NearDuplicateIndexOptions) => NearDuplicateIndex;

const sized = (o: NearDuplicateIndexOptions) => (o.expectedSize ? { expectedSize: o.expectedSize } : {});

function hammingLimit(alg: HashAlg): number {
  const m = nearMatch(alg);
  if (m.distance !== "hamming") throw new Error(`${alg} does not match by Hamming distance`);
  return m.maxDistance;
}

/** One factory per near algorithm. */
export const NEAR_DUPLICATE_INDEXES: Readonly<Partial<Record<HashAlg, NearDuplicateIndexFactory>>> = {
  pdq: (o) => new PdqIndex({ maxDistance: hammingLimit("pdq"), ...sized(o) }),
  photodna: (o) => new PhotoDnaIndex({ threshold: o.photodnaThreshold, ...sized(o) }),
};

/** A new, empty index for one near algorithm; asking for an algorithm without a factory is a bug. */
export function createNearDuplicateIndex(alg: HashAlg, options: NearDuplicateIndexOptions): NearDuplicateIndex {
  const factory = NEAR_DUPLICATE_INDEXES[alg];
  if (!factory) throw new Error(`no near-duplicate index for ${alg}: add its factory to NEAR_DUPLICATE_INDEXES`);
  return factory(options);
}

/** A new, empty index for every near algorithm, by name. */
export function createNearDuplicateIndexes(options: NearDuplicateIndexOptions): Map<HashAlg, NearDuplicateIndex> {
  return new Map(NEAR_ALGORITHMS.map((alg) => [alg, createNearDuplicateIndex(alg, options)]));
}
