/**
 * Array parameters in the binary form (services/shared/pg-arrays.ts) against PostgreSQL: each type
 * reads back as the same array node-postgres's text form gives, NULLs, empty arrays and awkward
 * text included, columns unnest side by side, and the server refuses an array whose element type
 * is not the one the statement names.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bound, encodeArray } from "../../services/shared/pg-arrays.ts";
import { freshDatabase } from "../support/stack.ts";
import type { TestDatabase } from "../support/stack.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase("pg-arrays");
});
afterAll(async () => {
  await db?.drop();
});

/** The array as PostgreSQL reads it, given in text form and in binary form, as text for comparison. */
async function bothForms(type: string, values: unknown[]): Promise<{ text: string; binary: string }> {
  const sql = `SELECT $1::${type}[]::text AS v`;
  const text = (await db.pool.query<{ v: string }>(sql, [values])).rows[0]?.v as string;
  const binary = (await db.pool.query<{ v: string }>(bound(sql, [values]))).rows[0]?.v as string;
  return { text, binary };
}

describe("binary array parameters", () => {
  it.each([
    ["text", ["plain", 'quote " and \\ backslash', "{braces},comma", "", "né ☃", null, "NULL"]],
    ["uuid", ["0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", null, "FFFFFFFF-0000-4000-8000-000000000000"]],
    ["bigint", [0, -1, 9007199254740991, "-9223372036854775808", "9223372036854775807", null]],
    ["int", [0, -2147483648, 2147483647, null]],
    ["boolean", [true, false, null]],
    ["bytea", [Buffer.from([0, 1, 255, 92, 34]), Buffer.alloc(0), null]],
    ["jsonb", ['{"caseRef":"synthetic","n":[1,2]}', null, "[]", { a: "é" }]],
    ["text", []],
  ])("%s[] reads back as the text form does: %j", async (type, values) => {
    const { text, binary } = await bothForms(type, values);
    expect(binary).toBe(text);
  });

  it("unnests several binary columns side by side, as a round's write does", async () => {
    const { rows } = await db.pool.query<{ id: string; n: number; body: Buffer }>(
      bound("SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bytea[]) AS t(id, n, body)", [
        ["0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "00000000-0000-4000-8000-000000000001"],
        [1, "2"],
        [Buffer.from("a"), Buffer.from("bc")],
      ]),
    );
    expect(rows).toEqual([
      { id: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", n: 1, body: Buffer.from("a") },
      { id: "00000000-0000-4000-8000-000000000001", n: 2, body: Buffer.from("bc") },
    ]);
  });

  it("is refused by the server when its element type is not the one the statement names", async () => {
    await expect(db.pool.query("SELECT $1::int[] AS v", [encodeArray("text", ["1"])])).rejects.toThrow(/element type/);
  });
});
