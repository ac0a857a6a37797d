// All values here are random bytes, never real perceptual hashes.
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { EXACT_ALGORITHMS, NEAR_ALGORITHMS, hashAlgorithm } from "../../shared/wire/hash-algorithms.ts";
import type { HashAlg } from "../../shared/wire/records.ts";
import { NEAR_DUPLICATE_INDEXES, createNearDuplicateIndex, createNearDuplicateIndexes } from "./index.ts";
import { PdqIndex } from "./pdq-index.ts";
import { PhotoDnaIndex } from "./photodna-index.ts";

const OPTIONS = { photodnaThreshold: 1800 };

/** A random value of the algorithm, in its wire encoding. */
function randomValue(alg: HashAlg): string {
  const a = hashAlgorithm(alg);
  return randomBytes(a.bytes).toString(a.encoding);
}

describe("near-duplicate index factories", () => {
  it("has one for every near algorithm of the hash algorithm table, and none for an exact one", () => {
    for (const alg of NEAR_ALGORITHMS) expect(NEAR_DUPLICATE_INDEXES[alg], `no index factory for ${alg}`).toBeTypeOf("function");
    for (const alg of EXACT_ALGORITHMS) expect(NEAR_DUPLICATE_INDEXES[alg], `${alg} matches exactly`).toBeUndefined();
    expect(Object.keys(NEAR_DUPLICATE_INDEXES).sort()).toEqual([...NEAR_ALGORITHMS].sort());
    expect([...createNearDuplicateIndexes(OPTIONS).keys()]).toEqual(NEAR_ALGORITHMS);
    expect(() => createNearDuplicateIndex("md5", OPTIONS)).toThrow(/no near-duplicate index for md5/);
  });

  it("builds each index with the table's limit and the configured threshold", () => {
    const pdq = createNearDuplicateIndex("pdq", OPTIONS);
    expect(pdq).toBeInstanceOf(PdqIndex);
    expect((pdq as PdqIndex).maxDistance).toBe(31);
    const photodna = createNearDuplicateIndex("photodna", { photodnaThreshold: 1234 });
    expect(photodna).toBeInstanceOf(PhotoDnaIndex);
    expect((photodna as PhotoDnaIndex).threshold).toBe(1234);
  });

  for (const alg of NEAR_ALGORITHMS) {
    it(`${alg}: add, query, remove by id through the interface`, () => {
      const index = createNearDuplicateIndex(alg, { ...OPTIONS, expectedSize: 10 });
      const a = randomValue(alg);
      const b = randomValue(alg);
      index.add(1, a);
      index.add(2, b);
      index.add(2, randomValue(alg));
      expect(index.size).toBe(3);
      expect(index.query(a)).toEqual([{ id: 1, distance: 0 }]);
      expect(index.query(b)).toEqual([{ id: 2, distance: 0 }]);
      index.remove(2);
      expect(index.size).toBe(1);
      expect(index.query(b)).toEqual([]);
      index.compact();
      expect(index.query(a)).toEqual([{ id: 1, distance: 0 }]);
      expect(index.memoryBytes()).toBeGreaterThan(0);
    });
  }
});
