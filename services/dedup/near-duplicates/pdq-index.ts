/**
 * In-memory PDQ near-duplicate index: "every entry within Hamming distance d (default 31) of this
 * 256-bit hash", exact, in well under a millisecond at 10 million entries. Pure: no I/O.
 *
 * Multi-index hashing (Norouzi, Punjani & Fleet, "Fast search in Hamming space with multi-index
 * hashing"). The 256 bits are cut into m chunks, each with a table from chunk value to the entries
 * holding it. If two hashes differ in at most d bits, the differences are shared out over the chunks,
 * so (pigeonhole) some chunk differs in at most floor(d / m) bits. A query enumerates, per chunk,
 * every value within that many bit flips of its own chunk, looks each up, and checks what it finds
 * with a full 256-bit popcount. Nothing within d is missed; nothing further is reported. Radii are
 * worked out per query, so query(h, 40) is exact too; when probing would cost more than reading
 * every hash (large d, small segments) the index scans instead.
 *
 * Lower-bound filter. Chunk distances add up, so a candidate found at f flips in chunk c, and not
 * found in the other chunks (each therefore differing by at least radius + 1), is at distance
 * >= f + sum over the others of (radius + 1). With m = 11 and radius 2 everywhere (sum 33), an entry
 * found at 2 flips in one chunk only is at distance >= 32 and is dropped without reading its hash;
 * that is most of the random look-alikes. Only entries found at <= 1 flip, or in two chunks, are read.
 *
 * Parameters are chosen by a cost model (chooseLayout(); counts of cache misses) from the number of
 * entries, max(live, expectedSize) when the main tables are built, capped at 8x the live count:
 *   - from ~300k entries (the case the index is for): m = 11 chunks, 3 of 24 bits and 8 of 23, radius
 *     2 in all of them. Per query: 3 x 301 + 8 x 277 = 3,119 keys tested. At 10M entries ~1,950 of
 *     them are present, giving ~3,200 candidate slots, of which ~270 pass the filter and have their
 *     hash read (without the filter: ~2,900). At 1M: ~300 present, ~320 candidates, ~27 read.
 *   - below that, 16-18 chunks of 14-16 bits with radius 1, or a 12-13 chunk layout in between; tiny
 *     segments are scanned. (m = 16, radius 1 at 10M would read ~40,000 candidates per query.)
 *
 * Table layout (rank/select, so the part a query touches for an absent key is small):
 *   bitmap   1 bit per possible key, in 32-byte blocks: word 0 counts the bits set in earlier blocks,
 *            words 1-7 hold 224 keys, so a key's presence and its rank come from one cache line.
 *            Keys are the whole chunk (<= 24 bits); small segments use log2(n) + 4 bits of it.
 *   cells    one Uint32 per present key, in key order: the slot when the key has one entry, else
 *            0x80000000 | the position of [count, slot, slot, ...] in overflow.
 * Tables are built by radix-sorting (key, slot) pairs, so writes stay sequential.
 *
 * Memory (typed arrays only, outside the JS heap; no per-entry objects or Maps):
 *   - store: 32 B hash + 4 B id + 1 B tombstone flag per entry (+ 4 B id order for remove() when ids
 *     were not added in increasing order), allocated for expectedSize up front;
 *   - per table: bitmap 2^keyBits / 7 bytes (1.2 MB for 23 bits, 2.4 MB for 24), 4 B per present key,
 *     4 B per entry sharing a key plus 4 B per such key.
 *   memoryBytes() reports the total; docs/benchmarks.md has the figures measured at 1M and 10M.
 *
 * Time goes almost entirely on cache and TLB misses, so the search gathers each level (bitmap words,
 * cells, overflow lists, hashes) in its own loop of independent loads that the CPU can overlap. Its
 * speed and memory are measured by bench/near-duplicates.ts, not by tests.
 *
 * Updates. Entries live in one append-only store, covered by a static "main" segment, a static
 * "delta" segment over entries added since, and an unindexed tail that is scanned. When a query finds
 * the tail longer than BUFFER_LIMIT (1,024) it rebuilds the delta over delta + tail (cheap: the delta
 * is small), and when the delta would pass max(DELTA_MIN, main / 8), capped at DELTA_MAX (262,144),
 * it runs compact(): drop tombstones, rebuild the main tables over everything. The check runs at
 * query time, so a burst of add() calls (a start-up catch-up, say) costs one build, not thousands;
 * that first query then waits for it (docs/benchmarks.md has the rebuild times) unless the caller
 * calls compact() first. addBulk() builds straight away. remove() sets tombstones; they are
 * compacted away once more than a quarter of the entries.
 *
 * Ids are caller-chosen integers in [0, 2^32 - 1]. One id may hold several hashes (a record with
 * several PDQ hashes); query() reports each id once, at its smallest distance, sorted by distance then
 * id, and remove(id) removes all of the id's hashes. Hex input may be upper or lower case.
 *
 * Quality filtering (PDQ quality < 50 carries no signal) is the caller's job: see PDQ_MIN_QUALITY.
 */

import { hashAlgorithm, nearMatch } from "../../shared/wire/hash-algorithms.ts";
import type { NearDuplicateIndex } from "./index.ts";
import { release, resized } from "./typed-memory.ts";

function pdqRule(): { maxDistance: number; minQuality: number } {
  const match = nearMatch("pdq");
  const quality = hashAlgorithm("pdq").quality;
  if (match.distance !== "hamming" || !quality) throw new Error("the pdq entry of the hash algorithm table must be Hamming with a quality");
  return { maxDistance: match.maxDistance, minQuality: quality.minForMatching };
}

/** Near-match threshold for PDQ: Hamming distance <= 31 of 256 bits (the hash algorithm table's pdq entry). */
export const PDQ_MAX_DISTANCE = pdqRule().maxDistance;
/** PDQ hashes with quality below this are ignored (not indexed, not queried) by callers (isNearMatchable). */
export const PDQ_MIN_QUALITY = pdqRule().minQuality;

export interface PdqEntry {
  id: number;
  hexHash: string;
}

export interface PdqMatch {
  id: number;
  distance: number;
}

/** Hashes already decoded: words holds 8 Uint32 per entry, in the order pdqHexToWords() produces. */
export interface PackedPdqEntries {
  ids: ArrayLike<number>;
  words: Uint32Array;
}

export interface PdqIndexOptions {
  /** Default distance for query(); also what the layout is tuned for. Default 31. */
  maxDistance?: number;
  /** Expected number of hashes: pre-sizes storage and the first table build. */
  expectedSize?: number;
  /** Force the number of chunks m (8..64) instead of choosing it; for tests and benchmarks. */
  chunks?: number;
}

export interface PdqIndexParameters {
  /** Number of chunks m. */
  chunks: number;
  /** Width of each chunk in bits (they add up to 256). */
  chunkBits: number[];
  /** Bits of each chunk used as the table key (all of it up to 24 bits). */
  keyBits: number[];
  /** At maxDistance: true when a linear scan is cheaper than the tables (small segments). */
  scan: boolean;
  /** At maxDistance: bit flips enumerated in each chunk (-1: chunk skipped). */
  radii: number[];
  /** At maxDistance: credit a candidate needs before its hash is read (see Segment.search). */
  minCredit: number;
}

export interface PdqIndexStats {
  size: number;
  /** Entries (live or tombstoned) in the main tables, in the delta tables, and not yet indexed. */
  mainEntries: number;
  deltaEntries: number;
  unindexedEntries: number;
  tombstones: number;
  /** Layout of the main tables, or null before the first build. */
  main: PdqIndexParameters | null;
  delta: PdqIndexParameters | null;
  memoryBytes: number;
}

const WORDS_PER_HASH = 8;
const HEX_LENGTH = 64;
const MAX_ID = 0xffff_ffff;

/** Unindexed entries tolerated before a query rebuilds the delta tables (linear scan of <= this many). */
const BUFFER_LIMIT = 1024;
/** The delta segment may grow to max(DELTA_MIN, main / 8), capped at DELTA_MAX, before a full compaction. */
const DELTA_MIN = 65_536;
const DELTA_MAX = 262_144;
/** Compaction drops tombstones once they are more than this share of the entries (and more than 1024). */
const TOMBSTONE_SHARE = 0.25;

// ---------------------------------------------------------------------------------------------
// Hex and bits

const HEX_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < 10; i++) HEX_VALUE[48 + i] = i;
for (let i = 0; i < 6; i++) {
  HEX_VALUE[65 + i] = 10 + i;
  HEX_VALUE[97 + i] = 10 + i;
}

/**
 * Decodes 64 hex characters into 8 big-endian Uint32 words at out[offset..offset+7]. Throws an Error
 * that says what is wrong (type, length, or the first non-hex character and its position).
 */
function decodeHexInto(hex: unknown, out: Uint32Array, offset: number, what: string): void {
  if (typeof hex !== "string") {
    throw new TypeError(`${what} must be a string of ${HEX_LENGTH} hex characters, got ${hex === null ? "null" : typeof hex}`);
  }
  if (hex.length !== HEX_LENGTH) {
    throw new Error(`${what} must be ${HEX_LENGTH} hex characters (256 bits), got ${hex.length} characters`);
  }
  for (let w = 0; w < WORDS_PER_HASH; w++) {
    let v = 0;
    for (let c = 0; c < 8; c++) {
      const pos = w * 8 + c;
      const code = hex.charCodeAt(pos);
      const nibble = code < 128 ? HEX_VALUE[code]! : -1;
      if (nibble < 0) {
        throw new Error(`${what} must be hexadecimal: character ${JSON.stringify(hex.charAt(pos))} at position ${pos} is not a hex digit`);
      }
      v = (v << 4) | nibble;
    }
    out[offset + w] = v;
  }
}

/** The 8 Uint32 words of a PDQ hash, as stored by the index and read by PackedPdqEntries. */
export function pdqHexToWords(hexHash: string): Uint32Array {
  const out = new Uint32Array(WORDS_PER_HASH);
  decodeHexInto(hexHash, out, 0, "PDQ hash");
  return out;
}

/** Packs entries for bruteForceQuery() (decoding each hash once). */
export function packPdqEntries(entries: Iterable<PdqEntry>): PackedPdqEntries {
  const list = Array.from(entries);
  const ids = new Uint32Array(list.length);
  const words = new Uint32Array(list.length * WORDS_PER_HASH);
  list.forEach((e, i) => {
    ids[i] = checkId(e.id);
    decodeHexInto(e.hexHash, words, i * WORDS_PER_HASH, `PDQ hash of entry ${i}`);
  });
  return { ids, words };
}

function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

/** Hamming distance between the hash at words[base..base+7] and q; stops early once above limit. */
function distanceAt(words: Uint32Array, base: number, q: Uint32Array, limit: number): number {
  const d =
    popcount32(words[base]! ^ q[0]!) +
    popcount32(words[base + 1]! ^ q[1]!) +
    popcount32(words[base + 2]! ^ q[2]!) +
    popcount32(words[base + 3]! ^ q[3]!);
  if (d > limit) return d;
  return (
    d +
    popcount32(words[base + 4]! ^ q[4]!) +
    popcount32(words[base + 5]! ^ q[5]!) +
    popcount32(words[base + 6]! ^ q[6]!) +
    popcount32(words[base + 7]! ^ q[7]!)
  );
}

/** Bits [start, start + width) of the hash at words[base..], width <= 32, as an unsigned integer. */
function chunkAt(words: Uint32Array, base: number, start: number, width: number, mask: number): number {
  const j = start >>> 5;
  const k = start & 31;
  let v = words[base + j]! >>> k;
  if (k + width > 32) v |= words[base + j + 1]! << (32 - k);
  return (v & mask) >>> 0;
}

const scratchA = new Uint32Array(WORDS_PER_HASH);
const scratchB = new Uint32Array(WORDS_PER_HASH);

/** Hamming distance (0..256) between two PDQ hashes given as 64 hex characters. */
export function hammingDistanceHex(a: string, b: string): number {
  decodeHexInto(a, scratchA, 0, "PDQ hash a");
  decodeHexInto(b, scratchB, 0, "PDQ hash b");
  return distanceAt(scratchA, 0, scratchB, 256);
}

function checkId(id: unknown): number {
  if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id > MAX_ID) {
    throw new Error(`id must be an integer from 0 to ${MAX_ID}, got ${String(id)}`);
  }
  return id;
}

function checkDistance(d: unknown): number {
  if (typeof d !== "number" || !Number.isInteger(d) || d < 0 || d > 256) {
    throw new Error(`maxDistance must be an integer from 0 to 256, got ${String(d)}`);
  }
  return d;
}

/** Sorts matches by distance, then id, keeping each id once at its smallest distance. */
function collect(ids: ArrayLike<number>, slots: number[], distances: number[]): PdqMatch[] {
  if (slots.length === 0) return [];
  const best = new Map<number, number>();
  for (let i = 0; i < slots.length; i++) {
    const id = ids[slots[i]!]!;
    const d = distances[i]!;
    const prev = best.get(id);
    if (prev === undefined || d < prev) best.set(id, d);
  }
  const out: PdqMatch[] = [];
  for (const [id, distance] of best) out.push({ id, distance });
  return out.sort((x, y) => x.distance - y.distance || x.id - y.id);
}

/**
 * Reference answer: checks every entry. Same result shape and order as PdqIndex.query() (each id once,
 * at its smallest distance; sorted by distance, then id). Accepts entries or pre-decoded hashes.
 */
export function bruteForceQuery(
  entries: Iterable<PdqEntry> | PackedPdqEntries,
  hexHash: string,
  maxDistance: number = PDQ_MAX_DISTANCE,
): PdqMatch[] {
  const d = checkDistance(maxDistance);
  const q = new Uint32Array(WORDS_PER_HASH);
  decodeHexInto(hexHash, q, 0, "PDQ query hash");
  if ("words" in entries && entries.words instanceof Uint32Array) {
    const { ids, words } = entries;
    const slots: number[] = [];
    const distances: number[] = [];
    const n = Math.min(ids.length, Math.floor(words.length / WORDS_PER_HASH));
    for (let i = 0; i < n; i++) {
      const dist = distanceAt(words, i * WORDS_PER_HASH, q, d);
      if (dist <= d) {
        slots.push(i);
        distances.push(dist);
      }
    }
    return collect(ids, slots, distances);
  }
  const ids: number[] = [];
  const distances: number[] = [];
  const h = new Uint32Array(WORDS_PER_HASH);
  for (const e of entries as Iterable<PdqEntry>) {
    decodeHexInto(e.hexHash, h, 0, "PDQ hash");
    const dist = distanceAt(h, 0, q, d);
    if (dist <= d) {
      ids.push(e.id);
      distances.push(dist);
    }
  }
  return collect(
    ids,
    ids.map((_, i) => i),
    distances,
  );
}

// ---------------------------------------------------------------------------------------------
// Layout, search plan and cost model

interface Layout {
  starts: number[];
  widths: number[];
  keyBits: number[];
}

/**
 * How a query at distance d probes a segment: radius per chunk (-1: skip the chunk) and the credit a
 * candidate needs before its hash is read (see Segment.search), or a plain scan when that is cheaper.
 */
interface Plan {
  scan: boolean;
  radii: number[];
  need: number;
  cost: number;
}

/** Number of values within r bit flips of a b-bit value: sum_{k<=r} C(b, k) (0 when r < 0). */
function variantCount(bits: number, r: number): number {
  let total = 0;
  let c = 1;
  for (let k = 0; k <= Math.min(r, bits); k++) {
    total += c;
    c = (c * (bits - k)) / (k + 1);
  }
  return total;
}

/**
 * Relative per-query costs, in units of one random memory access that misses every cache (50-150 ns
 * on the benchmark machine, mostly TLB and DRAM latency: the number of such misses is what counts).
 * Bitmap words are often in L2/L3; a key found costs a miss on its cell and, if it has several entries,
 * one on its overflow list; a candidate costs a little hashing; verifying one misses on its hash; a
 * linear scan streams 16-32 B per hash.
 */
const COST_BITMAP = 0.3;
const COST_CELL = 1;
const COST_OVERFLOW = 1;
const COST_CANDIDATE = 0.25;
const COST_VERIFY = 1;
const COST_LINEAR = 0.1;
/** Above this many variants per chunk, scan instead (keeps the variant tables small). */
const MAX_VARIANTS = 1 << 20;
/** Table keys are at most this many bits of the chunk: bitmaps of <= 2.4 MB. */
const MAX_KEY_BITS = 24;

/**
 * Key bits for a chunk of `width` bits over n entries: the whole chunk up to 24 bits, but no more than
 * log2(n) + 4, so a small segment does not carry megabytes of nearly empty bitmaps. (A shorter key
 * only adds candidates: flips counted on the key bits never exceed those on the whole chunk.)
 */
function keyBitsFor(width: number, n: number): number {
  return Math.min(width, MAX_KEY_BITS, Math.max(10, Math.ceil(Math.log2(Math.max(2, n))) + 4));
}

function layoutFor(chunks: number, n: number): Layout {
  const base = Math.floor(256 / chunks);
  const extra = 256 % chunks;
  const starts: number[] = [];
  const widths: number[] = [];
  const keyBits: number[] = [];
  let start = 0;
  for (let i = 0; i < chunks; i++) {
    const w = base + (i < extra ? 1 : 0);
    starts.push(start);
    widths.push(w);
    keyBits.push(keyBitsFor(w, n));
    start += w;
  }
  return { starts, widths, keyBits };
}

function binomial(n: number, k: number): number {
  let c = 1;
  for (let i = 0; i < k; i++) c = (c * (n - i)) / (i + 1);
  return c;
}

/** Estimated cost of probing n entries with these radii and required credit. */
function probeCost(n: number, layout: Layout, radii: number[], need: number): number {
  let cost = 0;
  for (let c = 0; c < radii.length; c++) {
    const radius = radii[c]!;
    if (radius < 0) continue;
    const b = layout.keyBits[c]!;
    const lookups = variantCount(b, radius);
    if (lookups > MAX_VARIANTS) return Infinity;
    const lambda = n / 2 ** b;
    const occupied = 1 - Math.exp(-lambda);
    const multiple = 1 - Math.exp(-lambda) * (1 + lambda);
    cost += lookups * (COST_BITMAP + occupied * COST_CELL + multiple * COST_OVERFLOW);
    cost += lookups * lambda * COST_CANDIDATE;
    // Entries found at f flips in this chunk alone earn radius + 1 - f; those reaching `need` on their own
    // are verified (entries found in several chunks are rare unless they are real matches).
    for (let f = 0; f <= Math.min(radius, radius + 1 - need); f++) cost += binomial(b, f) * lambda * COST_VERIFY;
  }
  return cost;
}

/**
 * The cheapest exact plan for distance d. Any radii are exact when sum(radius + 1) > d: an entry
 * missed in every chunk differs by at least radius + 1 in each. Two families:
 *   - refined pigeonhole (Norouzi et al.): radius r = floor(d/m) for the first d - m*r + 1 chunks and
 *     r - 1 for the rest, so sum(radius + 1) = d + 1: fewest lookups, every candidate verified;
 *   - uniform radius R >= r: more lookups, but a candidate found in one chunk at f flips has distance
 *     >= f + (m - 1)(R + 1) from what was not found, which for most of them already exceeds d.
 */
function planFor(n: number, layout: Layout, d: number): Plan {
  const m = layout.widths.length;
  const r = Math.floor(d / m);
  const candidates: { radii: number[]; need: number }[] = [
    { radii: layout.widths.map((_, c) => (c <= d - m * r ? r : r - 1)), need: 1 },
    { radii: layout.widths.map(() => r), need: m * (r + 1) - d },
    { radii: layout.widths.map(() => r + 1), need: m * (r + 2) - d },
  ];
  let best: Plan = { scan: true, radii: [], need: 0, cost: n * COST_LINEAR };
  for (const { radii, need } of candidates) {
    const cost = probeCost(n, layout, radii, need);
    if (cost < best.cost) best = { scan: false, radii, need, cost };
  }
  return best;
}

/** Picks the number of chunks m (8..64, so chunks fit 32 bits) with the cheapest plan at distance d. */
function pickLayout(n: number, maxDistance: number, chunks?: number): Layout {
  if (chunks !== undefined) return layoutFor(chunks, n);
  let best = layoutFor(8, n);
  let bestCost = planFor(n, best, maxDistance).cost;
  for (let m = 9; m <= 64; m++) {
    const layout = layoutFor(m, n);
    const cost = planFor(n, layout, maxDistance).cost;
    if (cost < bestCost) {
      best = layout;
      bestCost = cost;
    }
  }
  return best;
}

function describe(n: number, layout: Layout, d: number): PdqIndexParameters {
  const plan = planFor(n, layout, d);
  return {
    chunks: layout.widths.length,
    chunkBits: [...layout.widths],
    keyBits: [...layout.keyBits],
    scan: plan.scan,
    radii: plan.radii,
    minCredit: plan.need,
  };
}

/** The layout and plan the index would choose for n entries at distance maxDistance (or with `chunks` chunks). */
export function chooseLayout(n: number, maxDistance: number = PDQ_MAX_DISTANCE, chunks?: number): PdqIndexParameters {
  const d = checkDistance(maxDistance);
  return describe(n, pickLayout(n, d, chunks), d);
}

interface Variants {
  masks: Uint32Array;
  flips: Uint8Array;
}

const variantCache = new Map<number, Variants>();

/** XOR masks of every value within r bit flips over b bits (b <= 24), with their flip counts. Cached. */
function variantsOf(b: number, r: number): Variants {
  const key = b * 1024 + r;
  let v = variantCache.get(key);
  if (v) return v;
  const count = variantCount(b, r);
  const masks = new Uint32Array(count);
  const flips = new Uint8Array(count);
  let k = 0;
  const walk = (from: number, depth: number, mask: number): void => {
    masks[k] = mask;
    flips[k++] = depth;
    if (depth === r) return;
    for (let bit = from; bit < b; bit++) walk(bit + 1, depth + 1, mask | (1 << bit));
  };
  if (r >= 0) walk(0, 0, 0);
  v = { masks, flips };
  variantCache.set(key, v);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Static segment: one table per chunk over the live entries in slots [start, end) of the store.
//
// A table maps a key (the chunk's low keyBits bits) to the slots holding it, in a rank/select
// layout that keeps the part touched for an absent key small enough to mostly stay in cache:
//   bitmap   1 bit per possible key (is any entry there?) in 32-byte blocks: word 0 counts the bits
//            set in earlier blocks, words 1-7 hold 224 keys, so a key's rank (its index in cells)
//            comes from one cache line. 2^keyBits / 224 x 32 bytes: 1.2 MB for 23-bit keys.
//   cells    one Uint32 per present key, in key order: the slot itself when the key has one entry,
//            else 0x80000000 | position in overflow
//   overflow [count, slot, slot, ...] for keys with several entries

interface ChunkTable {
  start: number;
  width: number;
  chunkMask: number;
  keyBits: number;
  keyMask: number;
  bitmap: Uint32Array;
  cells: Uint32Array;
  overflow: Uint32Array;
}

const MULTI = 0x8000_0000;
/** Keys per 8-word bitmap block (word 0 of each block is the rank of its first key). */
const BLOCK_KEYS = 224;

/** Bits per radix-sort pass: 2^11 destinations x 2 arrays of write streams stay within L2. */
const RADIX_BITS = 11;

/**
 * Stable LSD radix sort of (keys[i], vals[i]), i < n, by the low `bits` bits of keys. Uses tmpKeys and
 * tmpVals as the second buffer; returns whichever pair holds the result.
 */
function radixSortPairs(
  keys: Uint32Array,
  vals: Uint32Array,
  tmpKeys: Uint32Array,
  tmpVals: Uint32Array,
  n: number,
  bits: number,
): [Uint32Array, Uint32Array] {
  const passes = Math.max(1, Math.ceil(bits / RADIX_BITS));
  const perPass = Math.ceil(bits / passes);
  const counts = new Uint32Array((1 << perPass) + 1);
  let srcK = keys;
  let srcV = vals;
  let dstK = tmpKeys;
  let dstV = tmpVals;
  for (let pass = 0, shift = 0; pass < passes; pass++, shift += perPass) {
    const width = Math.min(perPass, bits - shift);
    const mask = (1 << width) - 1;
    counts.fill(0);
    for (let i = 0; i < n; i++) counts[((srcK[i]! >>> shift) & mask) + 1]!++;
    for (let k = 1; k <= mask + 1; k++) counts[k]! += counts[k - 1]!;
    for (let i = 0; i < n; i++) {
      const key = srcK[i]!;
      const p = counts[(key >>> shift) & mask]!++;
      dstK[p] = key;
      dstV[p] = srcV[i]!;
    }
    [srcK, dstK] = [dstK, srcK];
    [srcV, dstV] = [dstV, srcV];
  }
  return [srcK, srcV];
}

/** Query scratch, grown on demand (queries are synchronous, so one set serves every index). */
const scratch = {
  keys: new Uint32Array(4096),
  words: new Uint32Array(4096),
  dir: new Uint32Array(4096),
  found: new Uint32Array(4096),
  credit: new Uint16Array(4096),
  ends: new Uint32Array(65),
  candidates: new Uint32Array(16_384),
  candidateCredit: new Uint16Array(16_384),
  verify: new Uint32Array(16_384),
  first: new Uint32Array(16_384),
  // Open-addressing map slot -> summed credit; entries are live when their stamp is the current one.
  mapSlot: new Uint32Array(1024),
  mapCredit: new Uint16Array(1024),
  mapStamp: new Uint32Array(1024),
  mapBits: 10,
  stamp: 0,
};

function growQueryScratch(variants: number): void {
  if (scratch.keys.length >= variants) return;
  scratch.keys = new Uint32Array(variants);
  scratch.words = new Uint32Array(variants);
  scratch.dir = new Uint32Array(variants);
  scratch.found = new Uint32Array(variants);
  scratch.credit = new Uint16Array(variants);
}

function growCandidateScratch(size: number, keep: number): void {
  if (scratch.candidates.length >= size) return;
  const next = Math.max(size, 2 * scratch.candidates.length);
  const candidates = new Uint32Array(next);
  candidates.set(scratch.candidates.subarray(0, keep));
  const credit = new Uint16Array(next);
  credit.set(scratch.candidateCredit.subarray(0, keep));
  scratch.candidates = candidates;
  scratch.candidateCredit = credit;
  scratch.verify = new Uint32Array(next);
  scratch.first = new Uint32Array(next);
}

class Segment {
  private readonly plans = new Map<number, Plan>();

  readonly start: number;
  readonly end: number;
  readonly indexed: number;
  readonly layout: Layout;
  readonly tables: ChunkTable[];

  private constructor(start: number, end: number, indexed: number, layout: Layout, tables: ChunkTable[]) {
    this.start = start;
    this.end = end;
    this.indexed = indexed;
    this.layout = layout;
    this.tables = tables;
  }

  /**
   * Builds the tables: per chunk, radix-sort (key, slot) pairs by key, then fill bitmap, cells and
   * overflow in one sequential pass. Sorting keeps memory writes sequential; a direct counting sort
   * scatters them at random over tables far larger than the caches, which is much slower at scale.
   */
  static build(words: Uint32Array, alive: Uint8Array, start: number, end: number, layout: Layout): Segment {
    let n = 0;
    for (let s = start; s < end; s++) n += alive[s]!;
    const slots = new Uint32Array(n);
    for (let s = start, i = 0; s < end; s++) if (alive[s]) slots[i++] = s;
    const keysA = new Uint32Array(n);
    const valsA = new Uint32Array(n);
    const keysB = new Uint32Array(n);
    const valsB = new Uint32Array(n);
    const tables: ChunkTable[] = [];
    for (let c = 0; c < layout.widths.length; c++) {
      const cStart = layout.starts[c]!;
      const width = layout.widths[c]!;
      const keyBits = layout.keyBits[c]!;
      const chunkMask = width === 32 ? 0xffff_ffff : 2 ** width - 1;
      const keyMask = 2 ** keyBits - 1;
      for (let i = 0; i < n; i++) keysA[i] = chunkAt(words, slots[i]! * WORDS_PER_HASH, cStart, width, chunkMask) & keyMask;
      valsA.set(slots);
      const [keys, vals] = radixSortPairs(keysA, valsA, keysB, valsB, n, keyBits);
      let groups = 0;
      let overflowLength = 0;
      for (let i = 0; i < n; ) {
        let j = i + 1;
        while (j < n && keys[j] === keys[i]) j++;
        groups++;
        if (j - i > 1) overflowLength += 1 + j - i;
        i = j;
      }
      const blocks = Math.ceil(2 ** keyBits / BLOCK_KEYS);
      const bitmap = new Uint32Array(blocks * 8);
      const cells = new Uint32Array(groups);
      const overflow = new Uint32Array(overflowLength);
      for (let i = 0, g = 0, o = 0; i < n; g++) {
        const key = keys[i]!;
        let j = i + 1;
        while (j < n && keys[j] === key) j++;
        const blk = Math.floor(key / BLOCK_KEYS);
        const off = key - blk * BLOCK_KEYS;
        bitmap[blk * 8 + 1 + (off >>> 5)]! |= 1 << (off & 31);
        if (j - i === 1) {
          cells[g] = vals[i]!;
        } else {
          cells[g] = (MULTI | o) >>> 0;
          overflow[o++] = j - i;
          for (let k = i; k < j; k++) overflow[o++] = vals[k]!;
        }
        i = j;
      }
      for (let blk = 0, total = 0; blk < blocks; blk++) {
        bitmap[blk * 8] = total;
        for (let x = blk * 8 + 1; x < blk * 8 + 8; x++) total += popcount32(bitmap[x]!);
      }
      tables.push({ start: cStart, width, chunkMask, keyBits, keyMask, bitmap, cells, overflow });
    }
    release(slots, keysA, valsA, keysB, valsB);
    return new Segment(start, end, n, layout, tables);
  }

  /** Frees the tables now (typed-memory.ts); the segment must not be searched again. */
  release(): void {
    for (const t of this.tables) release(t.bitmap, t.cells, t.overflow);
  }

  memoryBytes(): number {
    let bytes = 0;
    for (const t of this.tables) bytes += t.bitmap.byteLength + t.cells.byteLength + t.overflow.byteLength;
    return bytes;
  }

  describe(d: number): PdqIndexParameters {
    return describe(this.indexed, this.layout, d);
  }

  /**
   * Appends (slot, distance) of every live entry within d of q (a slot may be appended more than once).
   *
   * Each variant key present in chunk c's table yields its entries as candidates with credit
   * radius_c + 1 - f (f = bits flipped to reach it). Chunk distances add up, so a candidate's distance
   * is at least sum(radius + 1) - (its summed credit): only candidates whose credit reaches
   * need = sum(radius + 1) - d are verified. Exact: a true match is found in some chunk (pigeonhole)
   * and its credit always reaches need.
   *
   * Most of the time goes in cache misses, so the work is split into passes that first gather (loops
   * of independent loads with no branch on the loaded values, which the CPU overlaps) and then compute
   * on data already in cache: bitmap words, cells, overflow lists, then the hashes of the survivors.
   */
  search(words: Uint32Array, alive: Uint8Array, q: Uint32Array, d: number, outSlots: number[], outDist: number[]): void {
    let plan = this.plans.get(d);
    if (plan === undefined) {
      plan = planFor(this.indexed, this.layout, d);
      this.plans.set(d, plan);
    }
    if (plan.scan) {
      scanRange(words, alive, this.start, this.end, q, d, outSlots, outDist);
      return;
    }
    const { radii, need } = plan;
    const tables = this.tables;
    const m = tables.length;
    let variants = 0;
    for (let c = 0; c < m; c++) variants += variantCount(tables[c]!.keyBits, radii[c]!);
    growQueryScratch(variants);
    // keys, bitmapWords and wordIndex are reused as temporaries in pass 3.
    const { keys, words: bitmapWords, dir: wordIndex, found, credit, ends } = scratch;

    // Pass 1: which variant keys are present; keep their rank (index into cells) and credit.
    let nf = 0;
    for (let c = 0; c < m; c++) {
      const radius = radii[c]!;
      if (radius >= 0) {
        const t = tables[c]!;
        const qkey = chunkAt(q, 0, t.start, t.width, t.chunkMask) & t.keyMask;
        const { masks, flips } = variantsOf(t.keyBits, radius);
        const bitmap = t.bitmap;
        const nv = masks.length;
        for (let i = 0; i < nv; i++) {
          const key = qkey ^ masks[i]!;
          const blk = (key / BLOCK_KEYS) | 0;
          const off = key - blk * BLOCK_KEYS;
          const wi = blk * 8 + 1 + (off >>> 5);
          keys[i] = off & 31;
          wordIndex[i] = wi;
          bitmapWords[i] = bitmap[wi]!;
        }
        for (let i = 0; i < nv; i++) {
          const word = bitmapWords[i]!;
          const bit = keys[i]!;
          if (((word >>> bit) & 1) === 0) continue;
          const wi = wordIndex[i]!;
          const base = wi & ~7;
          let rank = bitmap[base]! + popcount32(word & ((1 << bit) - 1));
          for (let x = base + 1; x < wi; x++) rank += popcount32(bitmap[x]!);
          found[nf] = rank;
          credit[nf++] = radius + 1 - flips[i]!;
        }
      }
      ends[c] = nf;
    }

    // Pass 2: their cells: a slot, or MULTI | position of an overflow list.
    for (let c = 0, i = 0; c < m; c++) {
      const cells = tables[c]!.cells;
      for (const e = ends[c]!; i < e; i++) found[i] = cells[found[i]!]!;
    }

    // Pass 3: candidates. Single slots go straight in; overflow lists are fetched after.
    growCandidateScratch(nf, 0);
    let nc = 0;
    for (let c = 0, i = 0; c < m; c++) {
      let cand = scratch.candidates;
      let candCredit = scratch.candidateCredit;
      let lists = 0;
      for (const e = ends[c]!; i < e; i++) {
        const cell = found[i]!;
        if (cell < MULTI) {
          cand[nc] = cell;
          candCredit[nc++] = credit[i]!;
        } else {
          keys[lists] = cell - MULTI;
          wordIndex[lists++] = credit[i]!;
        }
      }
      if (lists === 0) continue;
      const overflow = tables[c]!.overflow;
      let more = 0;
      for (let k = 0; k < lists; k++) {
        const count = overflow[keys[k]!]!;
        bitmapWords[k] = count;
        more += count;
      }
      growCandidateScratch(nc + more + (nf - i), nc);
      cand = scratch.candidates;
      candCredit = scratch.candidateCredit;
      for (let k = 0; k < lists; k++) {
        const p = keys[k]!;
        const cr = wordIndex[k]!;
        for (let x = p + 1, end = p + bitmapWords[k]!; x <= end; x++) {
          cand[nc] = overflow[x]!;
          candCredit[nc++] = cr;
        }
      }
    }

    // Pass 4: keep the candidates whose summed credit reaches need (each slot once).
    const cand = scratch.candidates;
    const candCredit = scratch.candidateCredit;
    let verify = cand;
    let nv = nc;
    if (need > 1) {
      verify = scratch.verify;
      nv = 0;
      let bits = scratch.mapBits;
      while (1 << bits < 2 * nc) bits++;
      if (bits !== scratch.mapBits) {
        scratch.mapSlot = new Uint32Array(1 << bits);
        scratch.mapCredit = new Uint16Array(1 << bits);
        scratch.mapStamp = new Uint32Array(1 << bits);
        scratch.mapBits = bits;
        scratch.stamp = 0;
      }
      if (scratch.stamp === 0xffff_ffff) {
        scratch.mapStamp.fill(0);
        scratch.stamp = 0;
      }
      const stamp = ++scratch.stamp;
      const { mapSlot, mapCredit, mapStamp } = scratch;
      const shift = 32 - bits;
      const mask = (1 << bits) - 1;
      const positions = scratch.first;
      let distinct = 0;
      for (let j = 0; j < nc; j++) {
        const slot = cand[j]!;
        let h = Math.imul(slot, 0x9e3779b1) >>> shift;
        while (mapStamp[h] === stamp && mapSlot[h] !== slot) h = (h + 1) & mask;
        if (mapStamp[h] !== stamp) {
          mapStamp[h] = stamp;
          mapSlot[h] = slot;
          mapCredit[h] = candCredit[j]!;
          positions[distinct++] = h;
        } else {
          mapCredit[h]! += candCredit[j]!;
        }
      }
      for (let k = 0; k < distinct; k++) {
        const h = positions[k]!;
        if (mapCredit[h]! >= need) verify[nv++] = mapSlot[h]!;
      }
    }

    // Pass 5: fetch each survivor's first word, then verify with the full 256-bit distance.
    const first = scratch.first;
    for (let j = 0; j < nv; j++) first[j] = words[verify[j]! * WORDS_PER_HASH]!;
    const q0 = q[0]!;
    for (let j = 0; j < nv; j++) {
      if (popcount32(first[j]! ^ q0) > d) continue;
      const slot = verify[j]!;
      const dist = distanceAt(words, slot * WORDS_PER_HASH, q, d);
      if (dist <= d && alive[slot]) {
        outSlots.push(slot);
        outDist.push(dist);
      }
    }
  }
}

function scanRange(
  words: Uint32Array,
  alive: Uint8Array,
  start: number,
  end: number,
  q: Uint32Array,
  d: number,
  outSlots: number[],
  outDist: number[],
): void {
  for (let slot = start; slot < end; slot++) {
    const dist = distanceAt(words, slot * WORDS_PER_HASH, q, d);
    if (dist <= d && alive[slot]) {
      outSlots.push(slot);
      outDist.push(dist);
    }
  }
}

/** Slots 0..n-1 ordered by id (stable radix sort), or null if they already are. */
function orderById(ids: Uint32Array, n: number): Uint32Array | null {
  let sorted = true;
  for (let i = 1; i < n && sorted; i++) if (ids[i]! < ids[i - 1]!) sorted = false;
  if (sorted) return null;
  const slots = new Uint32Array(n);
  for (let i = 0; i < n; i++) slots[i] = i;
  const keys = ids.slice(0, n);
  const tmpKeys = new Uint32Array(n);
  const tmpVals = new Uint32Array(n);
  const order = radixSortPairs(keys, slots, tmpKeys, tmpVals, n, 32)[1];
  release(keys, tmpKeys, order === slots ? tmpVals : slots);
  return order;
}

export class PdqIndex implements NearDuplicateIndex {
  readonly maxDistance: number;
  private readonly expectedSize: number;
  private readonly chunks: number | undefined;

  // Append-only store; slot i holds words[8i..8i+7], ids[i], alive[i].
  private words: Uint32Array;
  private ids: Uint32Array;
  private alive: Uint8Array;
  private count = 0;
  private live = 0;
  private tombstones = 0;

  // Slots [0, mainEnd) are in main, [mainEnd, deltaEnd) in delta, [deltaEnd, count) unindexed.
  private main: Segment | null = null;
  private delta: Segment | null = null;
  private mainEnd = 0;
  private deltaEnd = 0;
  /** Slots [0, mainEnd) in id order, for remove(); null when they already are. */
  private idOrder: Uint32Array | null = null;

  private readonly q = new Uint32Array(WORDS_PER_HASH);

  constructor(options: PdqIndexOptions = {}) {
    this.maxDistance = checkDistance(options.maxDistance ?? PDQ_MAX_DISTANCE);
    const expected = options.expectedSize ?? 0;
    if (!Number.isInteger(expected) || expected < 0) {
      throw new Error(`expectedSize must be a non-negative integer, got ${String(options.expectedSize)}`);
    }
    this.expectedSize = expected;
    if (options.chunks !== undefined && (!Number.isInteger(options.chunks) || options.chunks < 8 || options.chunks > 64)) {
      throw new Error(`chunks must be an integer from 8 to 64 (chunks of at most 32 bits), got ${String(options.chunks)}`);
    }
    this.chunks = options.chunks;
    const capacity = Math.max(1024, expected);
    this.words = new Uint32Array(capacity * WORDS_PER_HASH);
    this.ids = new Uint32Array(capacity);
    this.alive = new Uint8Array(capacity);
  }

  /** Live (not removed) hashes. */
  get size(): number {
    return this.live;
  }

  /** Adds one hash. It is visible to the next query at once; tables are rebuilt lazily (see above). */
  add(id: number, hexHash: string): void {
    checkId(id);
    this.reserve(this.count + 1);
    decodeHexInto(hexHash, this.words, this.count * WORDS_PER_HASH, "PDQ hash");
    this.append(id);
  }

  /** Adds many hashes, then builds the tables. All or nothing: an invalid entry throws and adds none. */
  addBulk(entries: Iterable<PdqEntry>): void {
    const first = this.count;
    const liveBefore = this.live;
    if (Array.isArray(entries)) this.reserve(this.count + entries.length);
    let i = 0;
    try {
      for (const e of entries) {
        if (e === null || typeof e !== "object") throw new Error(`entry ${i} must be an object { id, hexHash }`);
        checkId(e.id);
        this.reserve(this.count + 1);
        decodeHexInto(e.hexHash, this.words, this.count * WORDS_PER_HASH, `PDQ hash of entry ${i}`);
        this.append(e.id);
        i++;
      }
    } catch (err) {
      this.alive.fill(0, first, this.count);
      this.count = first;
      this.live = liveBefore;
      if (err instanceof Error && !/^(PDQ hash of )?entry \d+/.test(err.message)) err.message = `entry ${i}: ${err.message}`;
      throw err;
    }
    this.settle(true);
  }

  /** Removes every hash held by id (a tombstone; the space is reclaimed by compaction). */
  remove(id: number): void {
    checkId(id);
    let lo = 0;
    let hi = this.mainEnd;
    const order = this.idOrder;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ids[order ? order[mid]! : mid]! < id) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.mainEnd; i++) {
      const slot = order ? order[i]! : i;
      if (this.ids[slot] !== id) break;
      this.kill(slot);
    }
    for (let slot = this.mainEnd; slot < this.count; slot++) if (this.ids[slot] === id) this.kill(slot);
  }

  /** Every id with a hash within maxDistance (default: the index's) of hexHash; exact. */
  query(hexHash: string, maxDistance: number = this.maxDistance): PdqMatch[] {
    const d = checkDistance(maxDistance);
    const q = this.q;
    decodeHexInto(hexHash, q, 0, "PDQ query hash");
    this.settle(false);
    const slots: number[] = [];
    const distances: number[] = [];
    if (this.main) this.main.search(this.words, this.alive, q, d, slots, distances);
    if (this.delta) this.delta.search(this.words, this.alive, q, d, slots, distances);
    scanRange(this.words, this.alive, this.deltaEnd, this.count, q, d, slots, distances);
    return collect(this.ids, slots, distances);
  }

  /** Drops tombstones and rebuilds the main tables over every live hash. */
  compact(): void {
    const { words, ids, alive } = this;
    let k = 0;
    for (let s = 0; s < this.count; s++) {
      if (!alive[s]) continue;
      if (k !== s) {
        words.copyWithin(k * WORDS_PER_HASH, s * WORDS_PER_HASH, (s + 1) * WORDS_PER_HASH);
        ids[k] = ids[s]!;
      }
      k++;
    }
    alive.fill(1, 0, k);
    alive.fill(0, k, this.count);
    this.count = k;
    this.live = k;
    this.tombstones = 0;
    // Until the new tables exist everything counts as unindexed (scanned), so a failed build (out of
    // memory, say) leaves a slow index rather than one that misses entries. The old tables are freed
    // first, so that a large index never holds two sets.
    this.main?.release();
    this.delta?.release();
    release(this.idOrder);
    this.main = null;
    this.delta = null;
    this.idOrder = null;
    this.mainEnd = 0;
    this.deltaEnd = 0;
    if (k === 0) return;
    // Plan for the expected size once a useful share of it is here (tables never more than 8x ahead).
    const planFor = Math.max(k, Math.min(this.expectedSize, 8 * k));
    const main = Segment.build(words, alive, 0, k, pickLayout(planFor, this.maxDistance, this.chunks));
    this.idOrder = orderById(ids, k);
    this.main = main;
    this.mainEnd = k;
    this.deltaEnd = k;
  }

  /** Bytes held by the index's typed arrays (storage capacity included). */
  memoryBytes(): number {
    return (
      this.words.byteLength +
      this.ids.byteLength +
      this.alive.byteLength +
      (this.idOrder?.byteLength ?? 0) +
      (this.main?.memoryBytes() ?? 0) +
      (this.delta?.memoryBytes() ?? 0)
    );
  }

  stats(): PdqIndexStats {
    return {
      size: this.live,
      mainEntries: this.mainEnd,
      deltaEntries: this.deltaEnd - this.mainEnd,
      unindexedEntries: this.count - this.deltaEnd,
      tombstones: this.tombstones,
      main: this.main?.describe(this.maxDistance) ?? null,
      delta: this.delta?.describe(this.maxDistance) ?? null,
      memoryBytes: this.memoryBytes(),
    };
  }

  private append(id: number): void {
    this.ids[this.count] = id;
    this.alive[this.count] = 1;
    this.count++;
    this.live++;
  }

  private kill(slot: number): void {
    if (!this.alive[slot]) return;
    this.alive[slot] = 0;
    this.live--;
    this.tombstones++;
  }

  /** Indexes the unindexed tail when it is long (or always, when force): delta rebuild or compaction. */
  private settle(force: boolean): void {
    const tail = this.count - this.deltaEnd;
    const manyTombstones = this.tombstones > 1024 && this.tombstones > this.count * TOMBSTONE_SHARE;
    if (!manyTombstones && (tail === 0 || (!force && tail <= BUFFER_LIMIT))) return;
    const pending = this.count - this.mainEnd;
    const deltaLimit = Math.min(DELTA_MAX, Math.max(DELTA_MIN, Math.floor(this.mainEnd / 8)));
    if (this.main === null || manyTombstones || pending > deltaLimit) {
      this.compact();
      return;
    }
    // As in compact(): the old delta's entries are scanned until the new tables exist.
    this.delta?.release();
    this.delta = null;
    this.deltaEnd = this.mainEnd;
    this.delta = Segment.build(this.words, this.alive, this.mainEnd, this.count, pickLayout(pending, this.maxDistance, this.chunks));
    this.deltaEnd = this.count;
  }

  private reserve(slots: number): void {
    const capacity = this.ids.length;
    if (slots <= capacity) return;
    // Cells keep slots below 2^31 (the top bit marks an overflow list).
    if (slots > MULTI - 1) throw new Error(`PdqIndex is full: at most ${MULTI - 1} hashes`);
    const next = Math.max(slots, Math.ceil(capacity * 1.5));
    // Moved, not copied: the old store is freed at once (typed-memory.ts).
    this.words = resized(this.words, next * WORDS_PER_HASH);
    this.ids = resized(this.ids, next);
    this.alive = resized(this.alive, next);
  }
}
