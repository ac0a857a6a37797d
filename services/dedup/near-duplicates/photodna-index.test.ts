// All hashes here are seeded pseudo-random byte strings (test/support/perceptual-hash-generators.ts), never real PhotoDNA hashes.
import { describe, expect, it } from "vitest";
import {
  PHOTODNA_DEFAULT_THRESHOLD,
  PHOTODNA_HASH_BYTES,
  PhotoDnaIndex,
  decodePhotoDnaBase64,
  photoDnaDistance,
} from "./photodna-index.ts";
import { bytesToBase64, createRng, randomInt, randomPhotoDnaBytes } from "../../../test/support/perceptual-hash-generators.ts";

/** A copy of bytes with the given byte offsets (position -> signed delta), kept within 0..255. */
function perturb(bytes: Uint8Array, deltas: [number, number][]): Uint8Array {
  const out = bytes.slice();
  for (const [pos, delta] of deltas) {
    const v = out[pos]!;
    // Go whichever way stays in range, so the distance contributed is exactly delta^2.
    out[pos] = v + delta <= 255 ? v + delta : v - delta;
  }
  return out;
}

function squared(a: Uint8Array, b: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i]! - b[i]!) ** 2;
  return sum;
}

function bruteForce(entries: { id: number; bytes: Uint8Array }[], q: Uint8Array, threshold: number): { id: number; distance: number }[] {
  const best = new Map<number, number>();
  for (const e of entries) {
    const d = squared(e.bytes, q);
    if (d < threshold && (best.get(e.id) ?? Infinity) > d) best.set(e.id, d);
  }
  return [...best].map(([id, distance]) => ({ id, distance })).sort((x, y) => x.distance - y.distance || x.id - y.id);
}

describe("PhotoDNA validation", () => {
  it("accepts exactly 144 bytes of base64", () => {
    const bytes = randomPhotoDnaBytes(createRng(1));
    const b64 = bytesToBase64(bytes);
    expect(b64).toHaveLength(192);
    expect(PHOTODNA_HASH_BYTES).toBe(144);
    expect([...decodePhotoDnaBase64(b64)]).toEqual([...bytes]);
  });

  it("rejects wrong lengths, bad characters and bad padding with a message that says why", () => {
    const rng = createRng(2);
    const b64 = bytesToBase64(randomPhotoDnaBytes(rng));
    const index = new PhotoDnaIndex();
    expect(() => index.add(1, bytesToBase64(randomPhotoDnaBytes(rng).subarray(0, 143)))).toThrow(
      /144 bytes \(192 base64 characters\), got 143 bytes/,
    );
    expect(() => index.add(1, bytesToBase64(new Uint8Array(145)))).toThrow(/144 bytes.*got 145 bytes/);
    expect(() => index.add(1, bytesToBase64(new Uint8Array(20)))).toThrow(/144 bytes.*got 20 bytes/);
    expect(() => index.add(1, "")).toThrow(/144 bytes.*got 0 bytes/);
    expect(() => index.add(1, `${b64.slice(0, 50)}!${b64.slice(51)}`)).toThrow(/"!" at position 50 is not in the base64 alphabet/);
    expect(() => index.add(1, `${b64.slice(0, 10)}\n${b64.slice(10)}`)).toThrow(/base64 alphabet/);
    expect(() => index.add(1, b64.slice(1))).toThrow(/length 191 is not a multiple of 4/);
    expect(() => index.add(1, `${b64.slice(0, 7)}-${b64.slice(8)}`)).toThrow(/"-" at position 7 is not in the base64 alphabet/);
    expect(() => index.add(1, `${b64.slice(0, 188)}A=AA`)).toThrow(/"=" at position 189/);
    expect(() => index.query(b64.slice(0, 100))).toThrow(/PhotoDNA query hash must be/);
    expect(() => index.add(-1, b64)).toThrow(/id must be an integer/);
    expect(() => index.query(b64, -1)).toThrow(/threshold must be a finite number >= 0/);
    expect(() => index.query(b64, Number.NaN)).toThrow(/threshold/);
    expect(() => index.add(1, 7 as unknown as string)).toThrow(/must be a base64 string/);
    expect(index.size).toBe(0);
  });
});

describe("PhotoDnaIndex", () => {
  it("defaults to a configurable threshold of 1800, matching distances strictly under it", () => {
    expect(PHOTODNA_DEFAULT_THRESHOLD).toBe(1800);
    const rng = createRng(3);
    const base = randomPhotoDnaBytes(rng);
    const index = new PhotoDnaIndex();
    expect(index.threshold).toBe(1800);
    // 1799 = 42^2 + 5^2 + 3^2 + 1^2; 1800 = 30^2 + 30^2; 1801 = 30^2 + 30^2 + 1^2.
    const at1799 = perturb(base, [
      [0, 42],
      [1, 5],
      [2, 3],
      [3, 1],
    ]);
    const at1800 = perturb(base, [
      [10, 30],
      [20, 30],
    ]);
    const at1801 = perturb(base, [
      [30, 30],
      [40, 30],
      [50, 1],
    ]);
    expect(squared(base, at1799)).toBe(1799);
    expect(squared(base, at1800)).toBe(1800);
    expect(squared(base, at1801)).toBe(1801);
    index.add(1, bytesToBase64(at1799));
    index.add(2, bytesToBase64(at1800));
    index.add(3, bytesToBase64(at1801));
    index.add(4, bytesToBase64(base));
    const q = bytesToBase64(base);
    expect(index.query(q)).toEqual([
      { id: 4, distance: 0 },
      { id: 1, distance: 1799 },
    ]);
    expect(index.query(q, 1801)).toEqual([
      { id: 4, distance: 0 },
      { id: 1, distance: 1799 },
      { id: 2, distance: 1800 },
    ]);
    expect(index.query(q, 1802).map((m) => m.id)).toEqual([4, 1, 2, 3]);
    expect(index.query(q, 1)).toEqual([{ id: 4, distance: 0 }]);
    expect(index.query(q, 0)).toEqual([]);
    const strict = new PhotoDnaIndex({ threshold: 1000 });
    strict.add(1, bytesToBase64(at1799));
    expect(strict.query(q)).toEqual([]);
    expect(strict.query(q, 1800)).toEqual([{ id: 1, distance: 1799 }]);
    expect(photoDnaDistance(q, bytesToBase64(at1801))).toBe(1801);
  });

  it("matches brute force on random hashes with planted near neighbours", () => {
    const rng = createRng(4);
    const entries: { id: number; bytes: Uint8Array }[] = [];
    const index = new PhotoDnaIndex();
    for (let i = 0; i < 3000; i++) {
      const bytes = randomPhotoDnaBytes(rng);
      entries.push({ id: i, bytes });
    }
    // Near neighbours of some entries: a few bytes moved by small amounts, straddling the threshold.
    for (let i = 0; i < 600; i++) {
      const source = entries[randomInt(rng, 3000)]!.bytes;
      const deltas: [number, number][] = Array.from({ length: 1 + randomInt(rng, 8) }, () => [randomInt(rng, 144), randomInt(rng, 30)]);
      entries.push({ id: 10_000 + i, bytes: perturb(source, deltas) });
    }
    for (const e of entries) index.add(e.id, bytesToBase64(e.bytes));
    expect(index.size).toBe(3600);
    let hits = 0;
    for (let i = 0; i < 200; i++) {
      const source = entries[randomInt(rng, entries.length)]!.bytes;
      const q = i % 4 === 0 ? randomPhotoDnaBytes(rng) : perturb(source, [[randomInt(rng, 144), randomInt(rng, 40)]]);
      for (const threshold of [PHOTODNA_DEFAULT_THRESHOLD, 500, 5000]) {
        const expected = bruteForce(entries, q, threshold);
        hits += expected.length;
        expect(index.query(bytesToBase64(q), threshold)).toEqual(expected);
      }
    }
    expect(hits).toBeGreaterThan(200);
  });

  it("never prunes a match whose norm differs from the query's as much as the distance allows", () => {
    // b = a + 3 everywhere: b - a is (nearly) parallel to a, so the norm bound is (nearly) tight.
    const index = new PhotoDnaIndex();
    const flat = new Uint8Array(144).fill(100);
    const raised = new Uint8Array(144).fill(103);
    index.add(1, bytesToBase64(raised));
    const rng = createRng(6);
    const a = randomPhotoDnaBytes(rng).map((x) => x % 250);
    index.add(2, bytesToBase64(a.map((x) => x + 3)));
    expect(index.query(bytesToBase64(flat), 1297)).toEqual([{ id: 1, distance: 1296 }]);
    expect(index.query(bytesToBase64(flat), 1296)).toEqual([]);
    expect(index.query(bytesToBase64(a), 1297)).toEqual([{ id: 2, distance: 1296 }]);
  });

  it("removes every hash of an id, reports an id once at its smallest distance, and compacts", () => {
    const rng = createRng(5);
    const index = new PhotoDnaIndex();
    const base = randomPhotoDnaBytes(rng);
    index.add(7, bytesToBase64(perturb(base, [[0, 20]])));
    index.add(7, bytesToBase64(perturb(base, [[0, 10]])));
    index.add(8, bytesToBase64(perturb(base, [[5, 40]])));
    const q = bytesToBase64(base);
    expect(index.query(q)).toEqual([
      { id: 7, distance: 100 },
      { id: 8, distance: 1600 },
    ]);
    index.remove(7);
    index.remove(12345);
    expect(index.size).toBe(1);
    expect(index.query(q)).toEqual([{ id: 8, distance: 1600 }]);

    const others = Array.from({ length: 3000 }, (_, i) => ({ id: 100 + i, b64: bytesToBase64(randomPhotoDnaBytes(rng)) }));
    for (const o of others) index.add(o.id, o.b64);
    const before = index.memoryBytes();
    for (const o of others.slice(0, 2000)) index.remove(o.id);
    expect(index.size).toBe(1001);
    expect(index.query(others[2500]!.b64, 1)).toEqual([{ id: 2600, distance: 0 }]);
    expect(index.query(others[5]!.b64, 1)).toEqual([]);
    expect(index.query(q)).toEqual([{ id: 8, distance: 1600 }]);
    expect(index.memoryBytes()).toBe(before);
  });
});
