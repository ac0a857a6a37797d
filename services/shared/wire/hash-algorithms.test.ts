// All values here are random bytes or fixed made-up strings, never real hashes.
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { HashAlgValues } from "./records.ts";
import type { HashAlg } from "./records.ts";
import {
  EXACT_ALGORITHMS,
  HASH_ALGORITHMS,
  HASH_ALGORITHM_NAMES,
  LICENSED_ALGORITHMS,
  NEAR_ALGORITHMS,
  PARTITION_KEY_ORDER,
  QUALITY_ALGORITHMS,
  UNLICENSED_ALGORITHMS,
  canonicalCase,
  hashAlgorithm,
  isHashAlg,
  isNearMatchable,
  nearMatch,
} from "./hash-algorithms.ts";

/** For each algorithm: what a submitter may send, and the canonical value it becomes. */
function samples(alg: HashAlg): { sent: string; canonical: string; label: string }[] {
  const a = hashAlgorithm(alg);
  const bytes = randomBytes(a.bytes);
  if (a.encoding === "hex") {
    const hex = bytes.toString("hex");
    return [
      { sent: hex, canonical: hex, label: "lower-case hex" },
      { sent: hex.toUpperCase(), canonical: hex, label: "upper-case hex" },
      { sent: `  ${hex}\n`, canonical: hex, label: "hex with whitespace around it" },
    ];
  }
  const b64 = bytes.toString("base64");
  return [
    { sent: b64, canonical: b64, label: "standard base64" },
    { sent: bytes.toString("base64url"), canonical: b64, label: "URL-safe base64" },
    { sent: bytes.toString("hex").toUpperCase(), canonical: b64, label: "hex" },
    { sent: ` ${b64} `, canonical: b64, label: "base64 with whitespace around it" },
  ];
}

describe("the hash algorithm table", () => {
  it("has one entry per schema HashAlg value, in the schema's order", () => {
    expect(HASH_ALGORITHM_NAMES).toEqual([...HashAlgValues]);
    expect(HASH_ALGORITHMS.map((a) => a.name)).toEqual([...HashAlgValues]);
    for (const alg of HashAlgValues) {
      expect(isHashAlg(alg)).toBe(true);
      expect(hashAlgorithm(alg).name).toBe(alg);
    }
    for (const other of ["MD5", " md5", "sha-1", "photo dna", "vpdq", "", null, 5]) expect(isHashAlg(other)).toBe(false);
    expect(() => hashAlgorithm("tmk" as HashAlg)).toThrow(/no hash algorithm "tmk"/);
  });

  for (const a of HASH_ALGORITHMS) {
    describe(a.name, () => {
      it("accepts a valid value in every accepted form and normalises it to the canonical pattern", () => {
        for (const { sent, canonical, label } of samples(a.name)) {
          const n = a.normalise(sent);
          expect(n, label).toEqual({ ok: true, value: canonical });
          expect(a.pattern.test(canonical), label).toBe(true);
          // Idempotent: a canonical value normalises to itself.
          expect(a.normalise(canonical), label).toEqual({ ok: true, value: canonical });
        }
      });

      it("refuses a value of the wrong length, with a non-alphabet character, or empty", () => {
        const canonical = samples(a.name)[0]!.canonical;
        for (const bad of [canonical.slice(1), `${canonical}00`, `${canonical.slice(0, -1)}!`, ""]) {
          const n = a.normalise(bad);
          expect(n.ok, JSON.stringify(bad)).toBe(false);
          if (!n.ok) expect(n.problem.startsWith(`${a.name} must be `), n.problem).toBe(true);
          expect(a.pattern.test(bad)).toBe(false);
        }
      });
    });
  }

  it("gives the error texts the validation tests pin", () => {
    expect(hashAlgorithm("md5").normalise("abc")).toEqual({ ok: false, problem: "md5 must be 32 hex characters, got 3" });
    expect(hashAlgorithm("sha1").normalise("zz")).toEqual({ ok: false, problem: 'sha1 must be hexadecimal; found "z" at position 0' });
    expect(hashAlgorithm("photodna").normalise("AAAA")).toEqual({
      ok: false,
      problem: "photodna must be 144 bytes, got 3 (base64 of 4 chars)",
    });
    expect(hashAlgorithm("photodna").normalise("not base64!")).toEqual({
      ok: false,
      problem: "photodna must be base64 of 144 bytes or 288 hex characters",
    });
  });

  it("describes the canonical forms of DESIGN.md", () => {
    expect(HASH_ALGORITHMS.map((a) => [a.name, a.bytes, a.encoding, a.pattern.source])).toEqual([
      ["md5", 16, "hex", "^[0-9a-f]{32}$"],
      ["sha1", 20, "hex", "^[0-9a-f]{40}$"],
      ["sha256", 32, "hex", "^[0-9a-f]{64}$"],
      ["pdq", 32, "hex", "^[0-9a-f]{64}$"],
      ["photodna", 144, "base64", "^[A-Za-z0-9+/]{192}$"],
    ]);
    expect(hashAlgorithm("md5").description).toBe("32 lower-case hex characters");
    expect(hashAlgorithm("photodna").description).toBe("standard base64 of 144 bytes (192 characters)");
  });

  it("prefers md5, then sha1, sha256, pdq, photodna for the partition key", () => {
    expect(PARTITION_KEY_ORDER).toEqual(["md5", "sha1", "sha256", "pdq", "photodna"]);
    expect(new Set(HASH_ALGORITHMS.map((a) => a.partitionKeyRank)).size).toBe(HASH_ALGORITHMS.length);
  });

  it("joins on the cryptographic digests and near-matches the perceptual hashes with DESIGN.md's rules", () => {
    expect(EXACT_ALGORITHMS).toEqual(["md5", "sha1", "sha256"]);
    expect(NEAR_ALGORITHMS).toEqual(["pdq", "photodna"]);
    expect(nearMatch("pdq")).toEqual({ kind: "near", distance: "hamming", maxDistance: 31 });
    expect(nearMatch("photodna")).toEqual({ kind: "near", distance: "squared-euclidean", defaultThreshold: 1800 });
    expect(() => nearMatch("sha256")).toThrow(/matches exactly/);
  });

  it("keeps PDQ below quality 50 out of near matching, and every exact hash", () => {
    expect(QUALITY_ALGORITHMS).toEqual(["pdq"]);
    expect(hashAlgorithm("pdq").quality).toMatchObject({ min: 0, max: 100, minForMatching: 50 });
    expect(isNearMatchable({ alg: "pdq", quality: 49 })).toBe(false);
    expect(isNearMatchable({ alg: "pdq", quality: 50 })).toBe(true);
    expect(isNearMatchable({ alg: "pdq", quality: null })).toBe(true);
    expect(isNearMatchable({ alg: "photodna", quality: null })).toBe(true);
    for (const alg of EXACT_ALGORITHMS) expect(isNearMatchable({ alg, quality: null })).toBe(false);
  });

  it("names the reader columns and properties, and VICS's hash order", () => {
    const quality = hashAlgorithm("pdq").quality;
    expect([quality?.csvColumn, quality?.vicsProperty]).toEqual(["pdq_quality", "PDQQuality"]);
    const vics = [...HASH_ALGORITHMS].sort((x, y) => x.vics.position - y.vics.position).map((a) => a.vics.property);
    expect(vics).toEqual(["MD5", "SHA1", "SHA256", "PhotoDNA", "PDQ"]);
  });

  it("leaves the licensed PhotoDNA out of a new policy's default", () => {
    expect(LICENSED_ALGORITHMS).toEqual(["photodna"]);
    expect(UNLICENSED_ALGORITHMS).toEqual(["md5", "sha1", "sha256", "pdq"]);
  });

  it("folds case for hex lookups only", () => {
    expect(canonicalCase("sha256", "ABCdef")).toBe("abcdef");
    expect(canonicalCase("photodna", "ABCdef")).toBe("ABCdef");
  });
});
