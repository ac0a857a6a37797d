/**
 * The exactly-once step against PostgreSQL alone (no Kafka): what the apply function sees of a
 * round, what it may say about each partition's stored offset, and that an error leaves nothing
 * behind in any partition of the round.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyExactlyOnce } from "../../services/shared/exactly-once-step.ts";
import type { PartitionPosition, UnappliedBatch } from "../../services/shared/exactly-once-step.ts";
import type { PoolClient } from "../../services/shared/postgres.ts";
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

type Message = { offset: string };
const batch = (from: number, count: number, partition = 0) => ({
  topic: "t",
  partition,
  messages: Array.from({ length: count }, (_, i): Message => ({ offset: String(from + i) })),
});

async function stored(group: string): Promise<Record<number, number>> {
  const { rows } = await db.pool.query<{ partition: number; next_offset: number }>(
    "SELECT partition, next_offset FROM consumer_offsets WHERE consumer_group = $1",
    [group],
  );
  return Object.fromEntries(rows.map((r) => [r.partition, r.next_offset]));
}

const counting = (seen: UnappliedBatch<Message>[][]) => ({
  apply: async (_tx: PoolClient, batches: readonly UnappliedBatch<Message>[]) => {
    seen.push([...batches]);
    return { result: batches.reduce((n, b) => n + b.messages.length, 0) };
  },
});

describe("applyExactlyOnce", () => {
  it("hands over only what is at or past the stored offset, and stores the offset after the batch", async () => {
    const seen: UnappliedBatch<Message>[][] = [];
    const step = counting(seen);
    expect(await applyExactlyOnce(db.pool, "g1", [batch(0, 3)], step)).toEqual({
      result: 3,
      partitions: [{ partition: 0, nextOffset: "3", hold: false }],
    });
    // A redelivery overlapping what was applied: only offsets 3 and 4 are new.
    expect((await applyExactlyOnce(db.pool, "g1", [batch(1, 4)], step)).result).toBe(2);
    expect(seen[1]?.[0]?.messages.map((m) => m.offset)).toEqual(["3", "4"]);
    expect(seen[1]?.[0]?.redelivered).toBe(2);
    expect(seen[1]?.[0]?.storedOffset).toBe(3);
    // All of it applied before: nothing handed over, the stored offset stays.
    expect(await applyExactlyOnce(db.pool, "g1", [batch(0, 2)], step)).toEqual({
      result: 0,
      partitions: [{ partition: 0, nextOffset: "5", hold: false }],
    });
    expect(await stored("g1")).toEqual({ 0: 5 });
  });

  it("applies every partition of a round in one transaction, each from its own stored offset", async () => {
    const seen: UnappliedBatch<Message>[][] = [];
    const step = counting(seen);
    await applyExactlyOnce(db.pool, "g6", [batch(0, 4, 2)], step);
    // Partition 2 has applied 0..3; partitions 0 and 5 are new. Handed over in partition order.
    const outcome = await applyExactlyOnce(db.pool, "g6", [batch(0, 2, 5), batch(2, 4, 2), batch(0, 1, 0)], step);
    expect(seen[1]?.map((b) => [b.partition, b.storedOffset, b.redelivered, b.messages.map((m) => m.offset)])).toEqual([
      [0, 0, 0, ["0"]],
      [2, 4, 2, ["4", "5"]],
      [5, 0, 0, ["0", "1"]],
    ]);
    expect(outcome).toEqual({
      result: 5,
      partitions: [
        { partition: 0, nextOffset: "1", hold: false },
        { partition: 2, nextOffset: "6", hold: false },
        { partition: 5, nextOffset: "2", hold: false },
      ],
    });
    expect(await stored("g6")).toEqual({ 0: 1, 2: 6, 5: 2 });
  });

  it("refuses a round that names a partition twice or mixes topics, before touching anything", async () => {
    const step = counting([]);
    await expect(applyExactlyOnce(db.pool, "g7", [batch(0, 1, 1), batch(1, 1, 1)], step)).rejects.toThrow(/partition 1 twice/);
    await expect(applyExactlyOnce(db.pool, "g7", [batch(0, 1, 0), { ...batch(0, 1, 1), topic: "u" }], step)).rejects.toThrow(/one topic/);
    await expect(applyExactlyOnce(db.pool, "g7", [], step)).rejects.toThrow(/at least one batch/);
    expect(await stored("g7")).toEqual({});
  });

  it("stores the offset the apply function names per partition, or leaves it when it says null, and passes hold on", async () => {
    const at = (positions: Map<number, PartitionPosition>) => ({ apply: async () => ({ result: null, positions }) });
    const first = await applyExactlyOnce(
      db.pool,
      "g2",
      [batch(0, 5, 0), batch(0, 5, 1)],
      at(new Map([[0, { nextOffset: 2, hold: true }]])),
    );
    expect(first.partitions).toEqual([
      { partition: 0, nextOffset: "2", hold: true },
      { partition: 1, nextOffset: "5", hold: false },
    ]);
    expect(await stored("g2")).toEqual({ 0: 2, 1: 5 });
    const second = await applyExactlyOnce(
      db.pool,
      "g2",
      [batch(2, 5, 0), batch(5, 1, 1)],
      at(new Map([[0, { nextOffset: null, hold: true }]])),
    );
    expect(second.partitions).toEqual([
      { partition: 0, nextOffset: null, hold: true },
      { partition: 1, nextOffset: "6", hold: false },
    ]);
    expect(await stored("g2")).toEqual({ 0: 2, 1: 6 });
  });

  it("rolls back the apply function's writes and every partition's offset when it throws", async () => {
    await applyExactlyOnce(db.pool, "g3", [batch(0, 2, 1)], counting([]));
    const failing = {
      apply: async (tx: PoolClient) => {
        await tx.query("INSERT INTO applied VALUES (1)");
        throw new Error("apply failed");
      },
    };
    await expect(applyExactlyOnce(db.pool, "g3", [batch(0, 3, 0), batch(2, 3, 1)], failing)).rejects.toThrow("apply failed");
    expect((await db.pool.query("SELECT * FROM applied")).rows).toEqual([]);
    expect(await stored("g3")).toEqual({ 1: 2 });
  });

  it("holds the apply lock for the whole transaction", async () => {
    const lock = 9_000_001; // a test's own id, outside advisory-locks.ts's range
    let release = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const order: string[] = [];
    const first = applyExactlyOnce(db.pool, "g4", [batch(0, 1)], {
      applyLock: lock,
      apply: async () => {
        order.push("first in");
        await gate;
        order.push("first out");
        return { result: null };
      },
    });
    await new Promise((r) => setTimeout(r, 200));
    const second = applyExactlyOnce(db.pool, "g5", [batch(0, 1)], {
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

  it("takes two round trips of its own per round once the partitions' rows exist, with any group or topic name", async () => {
    // Quotes and a backslash: the names are written as literals in the round's simple queries.
    const group = "g6 'quoted' \\ group";
    const topic = "t'6";
    const at = (from: number, partition: number) => ({ ...batch(from, 2, partition), topic });
    const queries: string[] = [];
    const counted = new WeakSet<PoolClient>();
    let countQueries = true;
    const countOn = (client: PoolClient) => {
      if (counted.has(client)) return;
      counted.add(client);
      const query = client.query.bind(client) as (...args: unknown[]) => unknown;
      (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
        if (countQueries) queries.push(String(typeof args[0] === "string" ? args[0] : (args[0] as { text: string }).text));
        return query(...args);
      };
    };
    db.pool.on("acquire", countOn);
    try {
      await applyExactlyOnce(db.pool, group, [at(0, 0), at(0, 1)], counting([]));
      queries.length = 0;
      const outcome = await applyExactlyOnce(db.pool, group, [at(2, 0), at(2, 1)], { applyLock: 9_000_002, ...counting([]) });
      expect(outcome.partitions.map((p) => p.nextOffset)).toEqual(["4", "4"]);
      expect(queries).toHaveLength(2);
      expect(queries[0]).toMatch(/^BEGIN;/);
      expect(queries[1]).toMatch(/COMMIT$/);
    } finally {
      db.pool.off("acquire", countOn);
      countQueries = false;
    }
    expect(
      (
        await db.pool.query("SELECT partition, next_offset FROM consumer_offsets WHERE consumer_group = $1 AND topic = $2 ORDER BY 1", [
          group,
          topic,
        ])
      ).rows,
    ).toEqual([
      { partition: 0, next_offset: 4 },
      { partition: 1, next_offset: 4 },
    ]);
  });
});
