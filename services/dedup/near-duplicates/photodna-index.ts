/**
 * In-memory PhotoDNA near-duplicate index. Pure: no I/O.
 *
 * A PhotoDNA hash is 144 bytes (base64 on the wire: exactly 192 characters, no padding). Two hashes
 * are near duplicates when the squared Euclidean distance over the 144 byte values is under the
 * threshold (strictly: distance < threshold, as DESIGN.md words it: "under a configured threshold").
 *
 * PhotoDNA sets are far smaller than PDQ sets, so this is a linear scan over one packed Uint8Array
 * (144 B per hash), with two cheap prunings that never drop a match:
 *   - norm bound: |(|a| - |b|)|^2 <= |a - b|^2 (triangle inequality), with |a| stored per entry, so an
 *     entry whose norm is too far from the query's is skipped without reading its bytes;
 *   - early exit: the partial sum is checked every 16 bytes and the entry dropped once it reaches
 *     the threshold.
 * Memory: 144 + 4 (id) + 8 (norm) + 1 (tombstone) = 157 bytes per hash.
 *
 * Ids are caller-chosen integers in [0, 2^32 - 1]; one id may hold several hashes, query() reports
 * each id once at its smallest distance, and remove(id) removes all of them.
 */

import { hashAlgorithm, nearMatch } from "../../shared/wire/hash-algorithms.ts";
import type { NearDuplicateIndex } from "./index.ts";
import { resized } from "./typed-memory.ts";

export const PHOTODNA_HASH_BYTES = hashAlgorithm("photodna").bytes;
const BASE64_LENGTH = Math.ceil(PHOTODNA_HASH_BYTES / 3) * 4;

function defaultThreshold(): number {
  const match = nearMatch("photodna");
  if (match.distance !== "squared-euclidean") throw new Error("the photodna entry of the hash algorithm table must be squared Euclidean");
  return match.defaultThreshold;
}

/**
 * Default near-match threshold on the squared Euclidean distance (the hash algorithm table's
 * photodna entry). A starting point only: the hub's configuration supplies the real value
 * (PhotoDnaIndex options.threshold, or query()'s argument).
 */
export const PHOTODNA_DEFAULT_THRESHOLD = defaultThreshold();

export interface PhotoDnaMatch {
  id: number;
  distance: number;
}

export interface PhotoDnaIndexOptions {
  /** Default threshold for query(): matches have distance < threshold. Default 1800. */
  threshold?: number;
  /** Expected number of hashes, to pre-size storage. */
  expectedSize?: number;
}

const MAX_ID = 0xffff_ffff;
const BASE64_CHAR = /^[A-Za-z0-9+/]$/;

const BASE64_SHAPE = /^[A-Za-z0-9+/]*={0,2}$/;

/** Decodes and validates a base64 PhotoDNA hash; throws an Error that says what is wrong. */
export function decodePhotoDnaBase64(base64Hash: string, what = "PhotoDNA hash"): Uint8Array {
  if (typeof base64Hash !== "string") {
    throw new TypeError(`${what} must be a base64 string, got ${base64Hash === null ? "null" : typeof base64Hash}`);
  }
  if (!BASE64_SHAPE.test(base64Hash)) {
    const body = base64Hash.replace(/={1,2}$/, "");
    let i = 0;
    while (i < body.length && BASE64_CHAR.test(body.charAt(i))) i++;
    throw new Error(
      `${what} must be base64: character ${JSON.stringify(base64Hash.charAt(i))} at position ${i} is not in the base64 alphabet`,
    );
  }
  if (base64Hash.length % 4 !== 0) {
    throw new Error(`${what} must be base64: length ${base64Hash.length} is not a multiple of 4`);
  }
  const padding = base64Hash.endsWith("==") ? 2 : base64Hash.endsWith("=") ? 1 : 0;
  const bytes = (base64Hash.length / 4) * 3 - padding;
  if (bytes !== PHOTODNA_HASH_BYTES || base64Hash.length !== BASE64_LENGTH) {
    throw new Error(`${what} must be ${PHOTODNA_HASH_BYTES} bytes (${BASE64_LENGTH} base64 characters), got ${bytes} bytes`);
  }
  const buf = Buffer.from(base64Hash, "base64");
  if (buf.length !== PHOTODNA_HASH_BYTES) {
    throw new Error(`${what} must decode to ${PHOTODNA_HASH_BYTES} bytes, got ${buf.length}`);
  }
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
}

/** Squared Euclidean distance between two PhotoDNA hashes given in base64. */
export function photoDnaDistance(a: string, b: string): number {
  const x = decodePhotoDnaBase64(a, "PhotoDNA hash a");
  const y = decodePhotoDnaBase64(b, "PhotoDNA hash b");
  let sum = 0;
  for (let i = 0; i < PHOTODNA_HASH_BYTES; i++) {
    const diff = x[i]! - y[i]!;
    sum += diff * diff;
  }
  return sum;
}

function checkId(id: unknown): number {
  if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id > MAX_ID) {
    throw new Error(`id must be an integer from 0 to ${MAX_ID}, got ${String(id)}`);
  }
  return id;
}

function checkThreshold(t: unknown): number {
  if (typeof t !== "number" || !Number.isFinite(t) || t < 0) {
    throw new Error(`threshold must be a finite number >= 0, got ${String(t)}`);
  }
  return t;
}

export class PhotoDnaIndex implements NearDuplicateIndex {
  readonly threshold: number;
  private bytes: Uint8Array;
  private ids: Uint32Array;
  private norms: Float64Array;
  private alive: Uint8Array;
  private count = 0;
  private live = 0;
  private tombstones = 0;

  constructor(options: PhotoDnaIndexOptions = {}) {
    this.threshold = checkThreshold(options.threshold ?? PHOTODNA_DEFAULT_THRESHOLD);
    const expected = options.expectedSize ?? 0;
    if (!Number.isInteger(expected) || expected < 0) {
      throw new Error(`expectedSize must be a non-negative integer, got ${String(options.expectedSize)}`);
    }
    const capacity = Math.max(256, expected);
    this.bytes = new Uint8Array(capacity * PHOTODNA_HASH_BYTES);
    this.ids = new Uint32Array(capacity);
    this.norms = new Float64Array(capacity);
    this.alive = new Uint8Array(capacity);
  }

  /** Live (not removed) hashes. */
  get size(): number {
    return this.live;
  }

  add(id: number, base64Hash: string): void {
    checkId(id);
    const hash = decodePhotoDnaBase64(base64Hash);
    this.reserve(this.count + 1);
    const slot = this.count;
    this.bytes.set(hash, slot * PHOTODNA_HASH_BYTES);
    let sq = 0;
    for (let i = 0; i < PHOTODNA_HASH_BYTES; i++) sq += hash[i]! * hash[i]!;
    this.ids[slot] = id;
    this.norms[slot] = Math.sqrt(sq);
    this.alive[slot] = 1;
    this.count++;
    this.live++;
  }

  /** Removes every hash held by id. */
  remove(id: number): void {
    checkId(id);
    for (let slot = 0; slot < this.count; slot++) {
      if (this.ids[slot] === id && this.alive[slot]) {
        this.alive[slot] = 0;
        this.live--;
        this.tombstones++;
      }
    }
    if (this.tombstones > 1024 && this.tombstones > this.count / 4) this.compact();
  }

  /** Every id with a hash at squared Euclidean distance < threshold; sorted by distance, then id. */
  query(base64Hash: string, threshold: number = this.threshold): PhotoDnaMatch[] {
    const t = checkThreshold(threshold);
    const q = decodePhotoDnaBase64(base64Hash, "PhotoDNA query hash");
    let qsq = 0;
    for (let i = 0; i < PHOTODNA_HASH_BYTES; i++) qsq += q[i]! * q[i]!;
    const qNorm = Math.sqrt(qsq);
    // Floating-point slack so rounding in the norms can never prune a true match.
    const normLimit = t + 1e-6 * (t + 1);
    const { bytes, norms, alive } = this;
    const best = new Map<number, number>();
    for (let slot = 0; slot < this.count; slot++) {
      const gap = norms[slot]! - qNorm;
      if (gap * gap >= normLimit || !alive[slot]) continue;
      const base = slot * PHOTODNA_HASH_BYTES;
      let sum = 0;
      for (let block = 0; block < PHOTODNA_HASH_BYTES && sum < t; block += 16) {
        for (let i = block; i < block + 16; i++) {
          const diff = bytes[base + i]! - q[i]!;
          sum += diff * diff;
        }
      }
      if (sum < t) {
        const id = this.ids[slot]!;
        const prev = best.get(id);
        if (prev === undefined || sum < prev) best.set(id, sum);
      }
    }
    const out: PhotoDnaMatch[] = [];
    for (const [id, distance] of best) out.push({ id, distance });
    return out.sort((x, y) => x.distance - y.distance || x.id - y.id);
  }

  /** Bytes held by the index's typed arrays (storage capacity included). */
  memoryBytes(): number {
    return this.bytes.byteLength + this.ids.byteLength + this.norms.byteLength + this.alive.byteLength;
  }

  /** Drops removed hashes from storage. */
  compact(): void {
    let k = 0;
    for (let s = 0; s < this.count; s++) {
      if (!this.alive[s]) continue;
      if (k !== s) {
        this.bytes.copyWithin(k * PHOTODNA_HASH_BYTES, s * PHOTODNA_HASH_BYTES, (s + 1) * PHOTODNA_HASH_BYTES);
        this.ids[k] = this.ids[s]!;
        this.norms[k] = this.norms[s]!;
      }
      k++;
    }
    this.alive.fill(1, 0, k);
    this.alive.fill(0, k, this.count);
    this.count = k;
    this.live = k;
    this.tombstones = 0;
  }

  private reserve(slots: number): void {
    const capacity = this.ids.length;
    if (slots <= capacity) return;
    const next = Math.max(slots, Math.ceil(capacity * 1.5));
    // Moved, not copied: the old store is freed at once (typed-memory.ts).
    this.bytes = resized(this.bytes, next * PHOTODNA_HASH_BYTES);
    this.ids = resized(this.ids, next);
    this.norms = resized(this.norms, next);
    this.alive = resized(this.alive, next);
  }
}
