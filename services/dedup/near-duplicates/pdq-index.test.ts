// All hashes here are seeded pseudo-random digests (test/support/perceptual-hash-generators.ts), never real hash lists.
import { describe, expect, it } from "vitest";
import {
  PDQ_MAX_DISTANCE,
  PDQ_MIN_QUALITY,
  PdqIndex,
  bruteForceQuery,
  chooseLayout,
  hammingDistanceHex,
  packPdqEntries,
  pdqHexToWords,
} from "./pdq-index.ts";
import type { PdqEntry, PdqIndexOptions } from "./pdq-index.ts";
import {
  createRng,
  flipPdqBits,
  pdqNeighbour,
  randomBitPositions,
  randomInt,
  randomPdqHex,
} from "../../../test/support/perceptual-hash-generators.ts";

const PLANTED_DISTANCES = [0, 1, 15, 30, 31, 32];

function randomEntries(rng: () => number, n: number, firstId = 0): PdqEntry[] {
  return Array.from({ length: n }, (_, i) => ({ id: firstId + i, hexHash: randomPdqHex(rng) }));
}

/** The index numbers bit k of word j (word j = hex characters 8j..8j+7) as 32j + k, k = 0 the lowest. */
function indexBitToHexBit(p: number): number {
  const j = p >>> 5;
  const k = p & 31;
  return 8 * (4 * j + 3 - (k >>> 3)) + (7 - (k & 7));
}

/** Flips `total` bits spread as evenly as possible over the chunks: the pigeonhole's worst case. */
function spreadFlips(hex: string, chunkBits: number[], total: number, rng: () => number): string {
  const perChunk = chunkBits.map(() => 0);
  for (let i = 0; i < total; i++) perChunk[i % chunkBits.length]! += 1;
  const bits: number[] = [];
  let start = 0;
  chunkBits.forEach((w, c) => {
    const positions = Array.from({ length: w }, (_, i) => start + i);
    for (let k = 0; k < perChunk[c]!; k++) {
      const j = k + randomInt(rng, w - k);
      [positions[k], positions[j]] = [positions[j]!, positions[k]!];
      bits.push(indexBitToHexBit(positions[k]!));
    }
    start += w;
  });
  return flipPdqBits(hex, bits);
}

describe("PDQ helpers", () => {
  it("exports the DESIGN.md thresholds", () => {
    expect(PDQ_MAX_DISTANCE).toBe(31);
    expect(PDQ_MIN_QUALITY).toBe(50);
  });

  it("computes Hamming distances between hex hashes", () => {
    const rng = createRng(1);
    const a = randomPdqHex(rng);
    expect(hammingDistanceHex(a, a)).toBe(0);
    expect(hammingDistanceHex(a, a.toUpperCase())).toBe(0);
    const complement = Buffer.from(a, "hex").map((x) => x ^ 0xff);
    expect(hammingDistanceHex(a, Buffer.from(complement).toString("hex"))).toBe(256);
    for (const k of [1, 7, 31, 32, 200]) expect(hammingDistanceHex(a, pdqNeighbour(rng, a, k))).toBe(k);
  });

  it("maps index bit numbers to hex bit positions consistently", () => {
    const zero = "0".repeat(64);
    for (const p of [0, 1, 31, 32, 100, 255]) {
      const words = pdqHexToWords(flipPdqBits(zero, [indexBitToHexBit(p)]));
      expect(words[p >>> 5]).toBe(2 ** (p & 31));
    }
  });

  it("rejects malformed hashes with a message that says why", () => {
    const ok = "ab".repeat(32);
    expect(() => hammingDistanceHex(ok.slice(1), ok)).toThrow(/64 hex characters.*got 63/);
    expect(() => hammingDistanceHex(ok, `${ok}0`)).toThrow(/64 hex characters.*got 65/);
    expect(() => hammingDistanceHex(`${ok.slice(0, 10)}g${ok.slice(11)}`, ok)).toThrow(/"g" at position 10 is not a hex digit/);
    expect(() => hammingDistanceHex(ok, ` ${ok.slice(1)}`)).toThrow(/" " at position 0 is not a hex digit/);
    expect(() => hammingDistanceHex(ok, `${ok.slice(0, 63)}é`)).toThrow(/not a hex digit/);
    expect(() => hammingDistanceHex(ok, 42 as unknown as string)).toThrow(/must be a string/);
  });
});

describe("PdqIndex input validation", () => {
  it("throws on malformed hashes, ids and distances", () => {
    const index = new PdqIndex();
    const ok = "0f".repeat(32);
    expect(() => index.add(1, ok.slice(2))).toThrow(/PDQ hash must be 64 hex characters \(256 bits\), got 62 characters/);
    expect(() => index.add(1, `${ok.slice(0, 63)}z`)).toThrow(/"z" at position 63 is not a hex digit/);
    expect(() => index.add(-1, ok)).toThrow(/id must be an integer from 0 to 4294967295, got -1/);
    expect(() => index.add(1.5, ok)).toThrow(/id must be an integer/);
    expect(() => index.add(2 ** 32, ok)).toThrow(/id must be an integer/);
    expect(() => index.add(Number.NaN, ok)).toThrow(/id must be an integer/);
    expect(() => index.query(ok.slice(1))).toThrow(/PDQ query hash must be 64 hex characters/);
    expect(() => index.query(ok, -1)).toThrow(/maxDistance must be an integer from 0 to 256, got -1/);
    expect(() => index.query(ok, 257)).toThrow(/maxDistance/);
    expect(() => index.query(ok, 2.5)).toThrow(/maxDistance/);
    expect(() => index.remove(-3)).toThrow(/id must be an integer/);
    expect(() => new PdqIndex({ maxDistance: 300 })).toThrow(/maxDistance/);
    expect(() => new PdqIndex({ expectedSize: -5 })).toThrow(/expectedSize/);
    expect(() => new PdqIndex({ chunks: 7 })).toThrow(/chunks must be an integer from 8 to 64/);
    expect(index.size).toBe(0);
  });

  it("addBulk is all or nothing and names the bad entry", () => {
    const rng = createRng(2);
    const index = new PdqIndex();
    const first = randomEntries(rng, 100);
    index.addBulk(first);
    const batch = randomEntries(rng, 50, 1000);
    batch[30] = { id: 1030, hexHash: "xyz" };
    expect(() => index.addBulk(batch)).toThrow(/entry 30.*64 hex characters/);
    const badId = randomEntries(rng, 5, 2000);
    badId[3] = { id: -7, hexHash: randomPdqHex(rng) };
    expect(() => index.addBulk(badId)).toThrow(/entry 3: id must be an integer/);
    expect(index.size).toBe(100);
    expect(index.query(batch[0]!.hexHash, 0)).toEqual([]);
    expect(index.query(first[5]!.hexHash, 0)).toEqual([{ id: 5, distance: 0 }]);
  });
});

const layouts: { name: string; options: PdqIndexOptions }[] = [
  { name: "automatic layout", options: {} },
  { name: "11 chunks (23-24 bits)", options: { chunks: 11 } },
  { name: "16 chunks (16 bits)", options: { chunks: 16 } },
  { name: "8 chunks (32 bits, shortened keys)", options: { chunks: 8 } },
  { name: "32 chunks (8 bits, radius 0)", options: { chunks: 32 } },
];

describe.each(layouts)("PdqIndex exactness: $name", ({ options }) => {
  const rng = createRng(42);
  const base = randomEntries(rng, 20_000);
  const planted: PdqEntry[] = [];
  const centres: { hex: string; ids: Map<number, number> }[] = [];
  let nextId = 1_000_000;
  for (let i = 0; i < 40; i++) {
    const hex = randomPdqHex(rng);
    const ids = new Map<number, number>();
    for (const k of PLANTED_DISTANCES) {
      ids.set(nextId, k);
      planted.push({ id: nextId++, hexHash: pdqNeighbour(rng, hex, k) });
    }
    centres.push({ hex, ids });
  }
  const all = [...base, ...planted];
  const index = new PdqIndex(options);
  index.addBulk(all);

  it("finds every planted neighbour within 31 and never the one at 32", () => {
    expect(index.size).toBe(all.length);
    for (const { hex, ids } of centres) {
      const got = index.query(hex);
      const byId = new Map(got.map((m) => [m.id, m.distance]));
      for (const [id, k] of ids) {
        if (k <= 31) expect(byId.get(id)).toBe(k);
        else expect(byId.has(id)).toBe(false);
      }
      expect(got).toEqual(bruteForceQuery(all, hex, 31));
    }
  });

  it("matches brute force on random queries and queries near stored hashes", () => {
    const packed = packPdqEntries(all);
    for (let i = 0; i < 300; i++) {
      const hex = i % 3 === 0 ? randomPdqHex(rng) : pdqNeighbour(rng, all[randomInt(rng, all.length)]!.hexHash, randomInt(rng, 41));
      expect(index.query(hex)).toEqual(bruteForceQuery(packed, hex, 31));
    }
  });

  it("is exact for other distances given per query", () => {
    for (const d of [0, 5, 10, 20, 40, 64]) {
      for (let i = 0; i < 15; i++) {
        const hex = pdqNeighbour(rng, all[randomInt(rng, all.length)]!.hexHash, randomInt(rng, d + 3));
        expect(index.query(hex, d)).toEqual(bruteForceQuery(all, hex, d));
      }
    }
  });

  it("finds neighbours whose differences are spread evenly over the chunks", () => {
    const chunkBits = index.stats().main!.chunkBits;
    for (let i = 0; i < 30; i++) {
      const target = all[randomInt(rng, all.length)]!;
      const at31 = spreadFlips(target.hexHash, chunkBits, 31, rng);
      expect(hammingDistanceHex(at31, target.hexHash)).toBe(31);
      expect(index.query(at31).some((m) => m.id === target.id && m.distance === 31)).toBe(true);
      const at32 = spreadFlips(target.hexHash, chunkBits, 32, rng);
      expect(index.query(at32).some((m) => m.id === target.id)).toBe(false);
      expect(index.query(at32)).toEqual(bruteForceQuery(all, at32, 31));
    }
  });
});

describe("PdqIndex exactness with full 23-24 bit keys (530,000 entries)", () => {
  it("matches brute force, including neighbours spread evenly over the chunks", () => {
    const rng = createRng(43);
    const n = 530_000;
    const entries = randomEntries(rng, n);
    const index = new PdqIndex();
    index.addBulk(entries);
    const params = index.stats().main!;
    expect(params).toMatchObject({ chunks: 11, scan: false, minCredit: 2 });
    expect(params.keyBits).toEqual(params.chunkBits);
    const packed = packPdqEntries(entries);
    for (let i = 0; i < 150; i++) {
      const target = entries[randomInt(rng, n)]!;
      const k = PLANTED_DISTANCES[i % PLANTED_DISTANCES.length]!;
      const spread = Math.floor(i / PLANTED_DISTANCES.length) % 2 === 1;
      const hex = spread ? spreadFlips(target.hexHash, params.chunkBits, k, rng) : pdqNeighbour(rng, target.hexHash, k);
      const got = index.query(hex);
      expect(got.some((m) => m.id === target.id)).toBe(k <= 31);
      expect(got).toEqual(bruteForceQuery(packed, hex, 31));
    }
  });
});

describe("PdqIndex updates", () => {
  function check(index: PdqIndex, entries: PdqEntry[], rng: () => number, queries = 60): void {
    const packed = packPdqEntries(entries);
    for (let i = 0; i < queries; i++) {
      const hex = i % 4 === 0 ? randomPdqHex(rng) : pdqNeighbour(rng, entries[randomInt(rng, entries.length)]!.hexHash, randomInt(rng, 36));
      expect(index.query(hex)).toEqual(bruteForceQuery(packed, hex, 31));
    }
  }

  it("answers exactly for hashes added one by one after a bulk build, through delta rebuilds", () => {
    const rng = createRng(7);
    const entries = randomEntries(rng, 20_000);
    const index = new PdqIndex();
    index.addBulk(entries);
    expect(index.stats()).toMatchObject({ mainEntries: 20_000, deltaEntries: 0, unindexedEntries: 0 });

    const added = randomEntries(rng, 500, 50_000);
    for (const e of added) index.add(e.id, e.hexHash);
    entries.push(...added);
    expect(index.stats().unindexedEntries).toBe(500);
    for (const e of added.slice(0, 20)) expect(index.query(e.hexHash, 0)).toEqual([{ id: e.id, distance: 0 }]);
    check(index, entries, rng);

    const more = randomEntries(rng, 3000, 60_000);
    for (const e of more) index.add(e.id, e.hexHash);
    entries.push(...more);
    check(index, entries, rng);
    const stats = index.stats();
    expect(stats.mainEntries).toBe(20_000);
    expect(stats.deltaEntries).toBeGreaterThan(1024);
    expect(stats.unindexedEntries).toBe(0);
    expect(index.size).toBe(23_500);
  });

  it("compacts into the main tables automatically once the delta outgrows its limit", () => {
    const rng = createRng(8);
    const entries: PdqEntry[] = [];
    const index = new PdqIndex();
    // First build: nothing indexed yet, so the first query past the tail limit compacts.
    for (const e of randomEntries(rng, 1100)) {
      index.add(e.id, e.hexHash);
      entries.push(e);
    }
    check(index, entries, rng, 10);
    expect(index.stats()).toMatchObject({ mainEntries: 1100, deltaEntries: 0, unindexedEntries: 0 });
    // A burst of 70,000 adds is one compaction (on the next query), not one per add.
    for (const e of randomEntries(rng, 70_000, 10_000)) {
      index.add(e.id, e.hexHash);
      entries.push(e);
    }
    expect(index.stats().unindexedEntries).toBe(70_000);
    check(index, entries, rng, 40);
    expect(index.stats()).toMatchObject({ mainEntries: 71_100, deltaEntries: 0, unindexedEntries: 0, size: 71_100 });
  });

  it("compact() folds everything into the main tables without changing answers", () => {
    const rng = createRng(9);
    const entries = randomEntries(rng, 5000);
    const index = new PdqIndex();
    index.addBulk(entries);
    for (const e of randomEntries(rng, 2000, 10_000)) {
      index.add(e.id, e.hexHash);
      entries.push(e);
    }
    index.remove(3);
    index.remove(10_005);
    const live = entries.filter((e) => e.id !== 3 && e.id !== 10_005);
    const queries = Array.from({ length: 40 }, () => pdqNeighbour(rng, live[randomInt(rng, live.length)]!.hexHash, randomInt(rng, 32)));
    const before = queries.map((q) => index.query(q));
    index.compact();
    expect(index.stats()).toMatchObject({ mainEntries: 6998, deltaEntries: 0, unindexedEntries: 0, tombstones: 0, size: 6998 });
    expect(queries.map((q) => index.query(q))).toEqual(before);
    expect(before).toEqual(queries.map((q) => bruteForceQuery(live, q, 31)));
  });

  it("removes ids from the main tables, the delta and the unindexed tail", () => {
    const rng = createRng(10);
    // Shuffled ids, so remove() goes through the id order built at compaction.
    const entries = randomEntries(rng, 10_000);
    for (let i = entries.length - 1; i > 0; i--) {
      const j = randomInt(rng, i + 1);
      [entries[i]!.id, entries[j]!.id] = [entries[j]!.id, entries[i]!.id];
    }
    const index = new PdqIndex();
    index.addBulk(entries);
    const delta = randomEntries(rng, 2000, 20_000);
    for (const e of delta) index.add(e.id, e.hexHash);
    index.query(randomPdqHex(rng));
    expect(index.stats().deltaEntries).toBe(2000);
    const tail = randomEntries(rng, 100, 30_000);
    for (const e of tail) index.add(e.id, e.hexHash);

    const victims = [entries[17]!, entries[9000]!, delta[5]!, delta[1999]!, tail[0]!, tail[99]!];
    for (const v of victims) {
      expect(index.query(v.hexHash, 0)).toEqual([{ id: v.id, distance: 0 }]);
      index.remove(v.id);
      expect(index.query(v.hexHash, 0)).toEqual([]);
    }
    index.remove(123_456_789); // unknown id: no-op
    expect(index.size).toBe(12_100 - victims.length);
    expect(index.stats().tombstones).toBe(victims.length);
    const gone = new Set(victims.map((v) => v.id));
    const live = [...entries, ...delta, ...tail].filter((e) => !gone.has(e.id));
    check(index, live, rng, 40);
  });

  it("compacts once tombstones pass a quarter of the entries", () => {
    const rng = createRng(11);
    const entries = randomEntries(rng, 8000);
    const index = new PdqIndex();
    index.addBulk(entries);
    for (let id = 0; id < 3000; id++) index.remove(id);
    expect(index.stats().tombstones).toBe(3000);
    check(index, entries.slice(3000), rng, 20);
    expect(index.stats()).toMatchObject({ tombstones: 0, mainEntries: 5000, size: 5000 });
  });

  it("reports an id with several hashes once, at its smallest distance, and removes all of them", () => {
    const rng = createRng(12);
    const index = new PdqIndex();
    index.addBulk(randomEntries(rng, 3000));
    const centre = randomPdqHex(rng);
    index.add(777_777, pdqNeighbour(rng, centre, 20));
    index.add(777_777, pdqNeighbour(rng, centre, 4));
    index.add(777_777, pdqNeighbour(rng, centre, 12));
    index.add(888_888, pdqNeighbour(rng, centre, 4));
    expect(index.query(centre)).toEqual([
      { id: 777_777, distance: 4 },
      { id: 888_888, distance: 4 },
    ]);
    expect(index.size).toBe(3004);
    index.remove(777_777);
    expect(index.size).toBe(3001);
    expect(index.query(centre)).toEqual([{ id: 888_888, distance: 4 }]);
  });

  it("handles an empty index and reports memory", () => {
    const index = new PdqIndex();
    expect(index.query(randomPdqHex(createRng(13)))).toEqual([]);
    expect(index.size).toBe(0);
    index.compact();
    expect(index.query("0".repeat(64))).toEqual([]);
    const before = index.memoryBytes();
    index.addBulk(randomEntries(createRng(14), 5000));
    expect(index.memoryBytes()).toBeGreaterThan(before);
  });
});

describe("bruteForceQuery and layout choice", () => {
  it("gives the same answer for entries and packed words", () => {
    const rng = createRng(15);
    const entries = randomEntries(rng, 2000);
    const packed = packPdqEntries(entries);
    for (let i = 0; i < 20; i++) {
      const hex = pdqNeighbour(rng, entries[randomInt(rng, 2000)]!.hexHash, randomInt(rng, 40));
      const result = bruteForceQuery(entries, hex, 31);
      expect(bruteForceQuery(packed, hex, 31)).toEqual(result);
      for (const m of result) expect(hammingDistanceHex(hex, entries[m.id]!.hexHash)).toBe(m.distance);
    }
  });

  it("chooses 11 chunks of 23-24 bits with radius 2 for millions of PDQ hashes", () => {
    const p = chooseLayout(10_000_000, 31);
    expect(p.chunks).toBe(11);
    expect(p.chunkBits.reduce((a, b) => a + b, 0)).toBe(256);
    expect(new Set(p.chunkBits)).toEqual(new Set([23, 24]));
    expect(p.scan).toBe(false);
    // Every plan must be exact: sum(radius + 1) > d.
    for (const n of [100, 10_000, 100_000, 1_000_000, 10_000_000]) {
      for (const d of [0, 10, 31, 40]) {
        const plan = chooseLayout(n, d);
        if (!plan.scan) expect(plan.radii.reduce((a, r) => a + r + 1, 0)).toBeGreaterThan(d);
      }
    }
  });

  it("uses distinct random bit positions", () => {
    const positions = randomBitPositions(createRng(16), 256);
    expect(new Set(positions).size).toBe(256);
  });
});
