import { describe, expect, it } from "vitest";
import { release, resized } from "./typed-memory.ts";

describe("typed-memory", () => {
  it("resized keeps the elements, zero-fills the rest and frees the old array", () => {
    const old = Uint32Array.from([7, 8, 9]);
    const grown = resized(old, 5);
    expect([...grown]).toEqual([7, 8, 9, 0, 0]);
    expect(grown).toBeInstanceOf(Uint32Array);
    expect(old.length).toBe(0);
    expect(old.buffer.byteLength).toBe(0);
    const norms = resized(Float64Array.from([0.5]), 2);
    expect([...norms]).toEqual([0.5, 0]);
  });

  it("release frees each array at once, skipping null and arrays already freed", () => {
    const a = new Uint8Array(1024);
    const b = new Uint32Array(16);
    release(a, null, b, undefined);
    expect([a.length, b.length, a.buffer.byteLength, b.buffer.byteLength]).toEqual([0, 0, 0, 0]);
    expect(() => release(a)).not.toThrow();
  });

  it("refuses a view that shares its buffer, which would free memory another array reads", () => {
    const whole = new Uint32Array(8);
    expect(() => release(whole.subarray(2, 4))).toThrow(/whole buffer of its own/);
    expect(() => resized(whole.subarray(0, 4), 8)).toThrow(/whole buffer of its own/);
    expect(whole.length).toBe(8);
  });
});
