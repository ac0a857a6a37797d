import { describe, expect, it } from "vitest";
import { arrayCasts, boundValues, encodeArray } from "./pg-arrays.ts";

describe("encodeArray", () => {
  it("writes array_recv's header, then each element as its length and bytes", () => {
    const buf = encodeArray("int", [7, null, -1]);
    expect([0, 4, 8, 12, 16].map((at) => buf.readInt32BE(at))).toEqual([1, 1, 23, 3, 1]);
    expect(buf.subarray(20).toString("hex")).toBe(`00000004${"00000007"}ffffffff00000004ffffffff`);
  });

  it("writes an empty array as no dimensions, with its element type", () => {
    const buf = encodeArray("text", []);
    expect(buf.length).toBe(12);
    expect([buf.readInt32BE(0), buf.readInt32BE(4), buf.readUInt32BE(8)]).toEqual([0, 0, 25]);
  });

  it("writes bigints from numbers, decimal strings and bigint alike, negatives in two's complement", () => {
    const buf = encodeArray("bigint", [-2, "9007199254740993", 2n ** 40n]);
    expect(buf.readBigInt64BE(24)).toBe(-2n);
    expect(buf.readBigInt64BE(36)).toBe(9007199254740993n);
    expect(buf.readBigInt64BE(48)).toBe(2n ** 40n);
  });

  it("writes a uuid's sixteen bytes and text as UTF-8", () => {
    expect(encodeArray("uuid", ["0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"]).subarray(24).toString("hex")).toBe(
      "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    );
    const text = encodeArray("text", ["né"]);
    expect(text.readInt32BE(20)).toBe(3);
    expect(text.subarray(24).toString("utf8")).toBe("né");
  });

  it("refuses an element that is not of the array's type, naming it", () => {
    expect(() => encodeArray("uuid", ["not-a-uuid"])).toThrow("uuid[] parameter: element 0 is not a valid uuid: not-a-uuid");
    expect(() => encodeArray("uuid", ["0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fz"])).toThrow("element 0 is not a valid uuid");
    expect(() => encodeArray("bigint", [1, 1.5])).toThrow("bigint[] parameter: element 1 is not a valid bigint");
    expect(() => encodeArray("bigint", ["12a"])).toThrow("element 0 is not a valid bigint");
    expect(() => encodeArray("int", [2 ** 31])).toThrow("int[] parameter: element 0 is not a valid int");
    expect(() => encodeArray("bytea", ["ab"])).toThrow("bytea[] parameter: element 0 is not a valid bytea");
    expect(() => encodeArray("boolean", [1])).toThrow("boolean[] parameter: element 0 is not a valid boolean");
  });
});

describe("boundValues", () => {
  it("encodes the arrays whose parameters the text casts to an array type, and leaves the rest", () => {
    const text =
      "SELECT * FROM unnest($1::text[], $3::bigint[]) WHERE x = $2::bigint AND y = ANY($4::point[]) AND z = ANY($5::constructor[])";
    expect([...arrayCasts(text)]).toEqual([
      [0, "text"],
      [2, "bigint"],
    ]);
    const [a, b, c, d, e] = boundValues(text, [["x"], 5, [1], [[1, 2]], ["y"]]);
    expect(Buffer.isBuffer(a) && a.readUInt32BE(8)).toBe(25);
    expect(b).toBe(5);
    expect(Buffer.isBuffer(c) && c.readUInt32BE(8)).toBe(20);
    expect(d).toEqual([[1, 2]]);
    expect(e).toEqual(["y"]);
  });
});
