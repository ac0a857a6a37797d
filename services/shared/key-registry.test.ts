/**
 * PgKeyRegistry's cache, against a stand-in for PostgreSQL that counts queries: a batch verified
 * in parallel asks for one key many times at once and must cost one query, a failed lookup must
 * not be remembered, and a revocation is seen by the next lookup.
 */
import { describe, expect, it } from "vitest";
import { PgKeyRegistry } from "./key-registry.ts";
import type { Queryable } from "./postgres.ts";

const ROW = {
  key_id: "force-a:0123456789abcdef",
  owner_kind: "agency",
  owner_id: "force-a",
  public_key: Buffer.alloc(32, 7),
  valid_from: new Date("2026-01-01T00:00:00Z"),
  valid_until: null,
  revoked_at: null as Date | null,
};

/** Answers key lookups after a tick (as a socket would), counting them; `fail` makes the next one throw. */
function fakeDb() {
  const db = {
    selects: 0,
    fail: false,
    revokedAt: null as Date | null,
    query: async (sql: string) => {
      await new Promise((r) => setTimeout(r, 5));
      if (sql.startsWith("UPDATE signing_keys")) {
        db.revokedAt = new Date();
        return { rows: [], rowCount: 1 };
      }
      db.selects++;
      if (db.fail) {
        db.fail = false;
        throw new Error("connection terminated");
      }
      return { rows: [{ ...ROW, revoked_at: db.revokedAt }], rowCount: 1 };
    },
  };
  return db;
}

describe("PgKeyRegistry", () => {
  it("answers concurrent lookups of one key with a single query", async () => {
    const db = fakeDb();
    const registry = new PgKeyRegistry(db as unknown as Queryable);
    const keys = await Promise.all(Array.from({ length: 500 }, () => registry.findKey(ROW.key_id)));
    expect(db.selects).toBe(1);
    expect(keys.every((k) => k?.ownerId === "force-a")).toBe(true);
    await registry.findKey(ROW.key_id); // cached
    expect(db.selects).toBe(1);
  });

  it("does not remember a failed lookup", async () => {
    const db = fakeDb();
    db.fail = true;
    const registry = new PgKeyRegistry(db as unknown as Queryable);
    const first = await Promise.allSettled([registry.findKey(ROW.key_id), registry.findKey(ROW.key_id)]);
    expect(first.map((r) => r.status)).toEqual(["rejected", "rejected"]);
    expect((await registry.findKey(ROW.key_id))?.keyId).toBe(ROW.key_id);
    expect(db.selects).toBe(2);
  });

  it("sees a revocation made through it at the next lookup", async () => {
    const db = fakeDb();
    const registry = new PgKeyRegistry(db as unknown as Queryable);
    expect((await registry.findKey(ROW.key_id))?.revokedAt).toBeNull();
    await registry.revokeKey(ROW.key_id, "compromised");
    expect((await registry.findKey(ROW.key_id))?.revokedAt).toBeInstanceOf(Date);
  });
});
