/**
 * The exactly-once step against PostgreSQL alone (no Kafka): what the apply function sees of a
 * batch, what it may say about the stored offset, and that an error leaves nothing behind.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyExactlyOnce } from "../../services/shared/exactly-once-step.ts";
import type { UnappliedBatch } from "../../services/shared/exactly-once-step.ts";
import { freshDatabase } from "../support/stack.ts";
import type { TestDatabase } from "../support/stack.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase("eo-step");
  await db.pool.query("CREATE TABLE applied (n int)");
});
afterAll(async () => {
  await db?.drop();
});

const batch = (from: number, count: number) => ({
  topic: "t",
  partition: 0,
  messages: Array.from({ length: count }, (_, i) => ({ offset: String(from + i) })),
});

async function stored(group: string): Promise<number | undefined> {
  const { rows } = await db.pool.query<{ next_offset: number }>("SELECT next_offset FROM consumer_offsets WHERE consumer_group = $1", [
    group,
  ]);
  return rows[0]?.next_offset;
}

describe("applyExactlyOnce", () => {
  it("hands over only what is at or past the stored offset, and stores the offset after the batch", async () => {
    const seen: UnappliedBatch<{ offset: string }>[] = [];
    const step = {
      apply: async (_tx: unknown, b: UnappliedBatch<{ offset: string }>) => {
        seen.push(b);
        return { result: b.messages.length };
      },
    };
    expect(await applyExactlyOnce(db.pool, "g1", batch(0, 3), step)).toEqual({ result: 3, nextOffset: "3", hold: false });
    // A redelivery overlapping what was applied: only offsets 3 and 4 are new.
    expect(await applyExactlyOnce(db.pool, "g1", batch(1, 4), step)).toEqual({ result: 2, nextOffset: "5", hold: false });
    expect(seen[1]?.messages.map((m) => m.offset)).toEqual(["3", "4"]);
    expect(seen[1]?.redelivered).toBe(2);
    expect(seen[1]?.storedOffset).toBe(3);
    // All of it applied before: nothing handed over, the stored offset stays.
    expect(await applyExactlyOnce(db.pool, "g1", batch(0, 2), step)).toEqual({ result: 0, nextOffset: "5", hold: false });
    expect(await stored("g1")).toBe(5);
  });

  it("stores the offset the apply function names, or leaves it when it says null, and passes hold on", async () => {
    const at = (nextOffset: number | null) => ({ apply: async () => ({ result: null, nextOffset, hold: true }) });
    expect(await applyExactlyOnce(db.pool, "g2", batch(0, 5), at(2))).toEqual({ result: null, nextOffset: "2", hold: true });
    expect(await stored("g2")).toBe(2);
    expect(await applyExactlyOnce(db.pool, "g2", batch(2, 5), at(null))).toEqual({ result: null, nextOffset: null, hold: true });
    expect(await stored("g2")).toBe(2);
  });

  it("rolls back the apply function's writes and the offset when it throws", async () => {
    const failing = {
      apply: async (tx: { query: (sql: string) => Promise<unknown> }) => {
        await tx.query("INSERT INTO applied VALUES (1)");
        throw new Error("apply failed");
      },
    };
    await expect(applyExactlyOnce(db.pool, "g3", batch(0, 3), failing)).rejects.toThrow("apply failed");
    expect((await db.pool.query("SELECT * FROM applied")).rows).toEqual([]);
    expect(await stored("g3")).toBeUndefined();
  });

  it("holds the apply lock for the whole transaction", async () => {
    const lock = 9_000_001; // a test's own id, outside advisory-locks.ts's range
    let release = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const order: string[] = [];
    const first = applyExactlyOnce(db.pool, "g4", batch(0, 1), {
      applyLock: lock,
      apply: async () => {
        order.push("first in");
        await gate;
        order.push("first out");
        return { result: null };
      },
    });
    await new Promise((r) => setTimeout(r, 200));
    const second = applyExactlyOnce(db.pool, "g5", batch(0, 1), {
      applyLock: lock,
      apply: async () => {
        order.push("second");
        return { result: null };
      },
    });
    await new Promise((r) => setTimeout(r, 200));
    release();
    await Promise.all([first, second]);
    expect(order).toEqual(["first in", "first out", "second"]);
  });
});
