import { describe, expect, it } from "vitest";
import { randomHex } from "../../test/support/fixtures.ts";
import { intrinsicDegeneracy, isSharedByMany, valuePrefix } from "./degenerate.ts";

const photodna = (bytes: number[]) => ({ alg: "photodna" as const, value: Buffer.from(bytes).toString("base64"), quality: null });

describe("degenerate perceptual values", () => {
  it("PDQ under the table's minimum quality is LOW_QUALITY; at the minimum or without a score it is not", () => {
    expect(intrinsicDegeneracy({ alg: "pdq", value: randomHex(32), quality: 49 })).toBe("LOW_QUALITY");
    expect(intrinsicDegeneracy({ alg: "pdq", value: randomHex(32), quality: 50 })).toBeNull();
    expect(intrinsicDegeneracy({ alg: "pdq", value: randomHex(32), quality: null })).toBeNull();
  });

  it("all-zero and all-one PDQ are CONSTANT; any other repeated byte is a real bit pattern", () => {
    expect(intrinsicDegeneracy({ alg: "pdq", value: "0".repeat(64), quality: 100 })).toBe("CONSTANT");
    expect(intrinsicDegeneracy({ alg: "pdq", value: "f".repeat(64), quality: 100 })).toBe("CONSTANT");
    expect(intrinsicDegeneracy({ alg: "pdq", value: "5".repeat(64), quality: 100 })).toBeNull();
  });

  it("PhotoDNA with every byte equal (all-zero included) is CONSTANT; one differing byte is not", () => {
    expect(intrinsicDegeneracy(photodna(new Array(144).fill(0)))).toBe("CONSTANT");
    expect(intrinsicDegeneracy(photodna(new Array(144).fill(37)))).toBe("CONSTANT");
    const almost = new Array(144).fill(37);
    almost[100] = 38;
    expect(intrinsicDegeneracy(photodna(almost))).toBeNull();
  });

  it("exact hashes are never degenerate, even all-zero", () => {
    expect(intrinsicDegeneracy({ alg: "md5", value: "0".repeat(32), quality: null })).toBeNull();
    expect(intrinsicDegeneracy({ alg: "sha256", value: "0".repeat(64), quality: null })).toBeNull();
  });

  it("SHARED from the threshold on; listings show only a prefix of the value", () => {
    expect([isSharedByMany(2, 3), isSharedByMany(3, 3)]).toEqual([false, true]);
    expect(valuePrefix("0123456789abcdef0123")).toBe("0123456789ab…");
  });
});
