/** The advisory lock ids are distinct: two roles sharing one would serialise (or exclude) each other. */
import { describe, expect, it } from "vitest";
import * as locks from "./advisory-locks.ts";

describe("advisory lock ids", () => {
  it("are distinct integers", () => {
    const ids = Object.values(locks);
    expect(ids.every((id) => Number.isSafeInteger(id))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
