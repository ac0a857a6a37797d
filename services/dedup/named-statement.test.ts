import { describe, expect, it } from "vitest";
import { namedStatement } from "./named-statement.ts";

describe("namedStatement", () => {
  it("reads every typed parameter through a scalar subquery, arrays and scalars alike", () => {
    const s = namedStatement("t.x", "SELECT * FROM t WHERE a = ANY($1::text[]) AND b > $12::bigint AND c = $2::uuid");
    expect(s).toEqual({
      name: "t.x",
      text: "SELECT * FROM t WHERE a = ANY((SELECT $1::text[])::text[]) AND b > (SELECT $12::bigint)::bigint AND c = (SELECT $2::uuid)::uuid",
    });
  });

  it("refuses a parameter without a type, which the planner would see", () => {
    expect(() => namedStatement("t.y", "SELECT $1::int, $2")).toThrow("statement t.y: parameter $2 has no type");
    expect(() => namedStatement("t.z", "SELECT $10 + $1::int")).toThrow("parameter $10 has no type");
  });
});
