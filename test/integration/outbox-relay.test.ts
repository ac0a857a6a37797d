/**
 * The outbox relay against PostgreSQL (the producer is a recording stand-in: what reaches Kafka is
 * covered end to end elsewhere): rows go out once each in id order, with their partition; sent rows
 * are deleted when due or on a quiet moment, not after every pass; a new lock holder sends again
 * what an earlier one sent but did not delete.
 */
import type { Producer } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RecordProducer } from "../../services/shared/kafka.ts";
import { createLogger } from "../../services/shared/logging.ts";
import { OutboxRelay } from "../../services/shared/outbox-relay.ts";
import type { CommittedOutbox } from "../../services/shared/outbox-relay.ts";
import { waitFor } from "../support/processes.ts";
import { freshDatabase } from "../support/stack.ts";
import { watchedPool } from "../support/watched-pool.ts";
import type { TestDatabase } from "../support/stack.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase("outbox-relay");
  await db.pool.query(`CREATE TABLE relay_outbox (id bigserial PRIMARY KEY, topic text NOT NULL, message_key text,
    message_value bytea NOT NULL, message_partition int)`);
});
afterAll(async () => {
  await db?.drop();
});

interface Sent {
  topic: string;
  key: string | null;
  value: string;
  partition?: number;
}

function recordingProducer(sent: Sent[], sendBytes: number[] = [], sendMs = 0): RecordProducer {
  const sendBatch: Producer["sendBatch"] = async (batch) => {
    if (sendMs) await new Promise((res) => setTimeout(res, sendMs));
    sendBytes.push((batch.topicMessages ?? []).flatMap((t) => t.messages).reduce((n, m) => n + Buffer.byteLength(m.value as Buffer), 0));
    for (const { topic, messages } of batch.topicMessages ?? []) {
      for (const m of messages) {
        sent.push({
          topic,
          key: m.key === undefined || m.key === null ? null : String(m.key),
          value: String(m.value),
          ...(m.partition !== undefined ? { partition: m.partition } : {}),
        });
      }
    }
    return [];
  };
  return { connect: async () => {}, disconnect: async () => {}, send: async () => [], sendBatch };
}

async function enqueue(values: string[], partition: number | null = null): Promise<void> {
  await db.pool.query(
    "INSERT INTO relay_outbox (topic, message_key, message_value, message_partition) SELECT 't', 'k', convert_to(v, 'UTF8'), $2 FROM unnest($1::text[]) AS v",
    [values, partition],
  );
}

/** Queues rows as a round's write does: their ids, and the highest id committed before them. */
async function enqueueCommitted(values: string[]): Promise<CommittedOutbox> {
  const { rows } = await db.pool.query<{ ids: number[]; before: number }>(
    `WITH queued AS (
       INSERT INTO relay_outbox (topic, message_key, message_value) SELECT 't', 'k', convert_to(v, 'UTF8') FROM unnest($1::text[]) AS v
       RETURNING id)
     SELECT (SELECT json_agg(id ORDER BY id) FROM queued) AS ids, (SELECT coalesce(max(id), 0) FROM relay_outbox) AS before`,
    [values],
  );
  const { ids, before } = rows[0] as { ids: number[]; before: number };
  return {
    before,
    rows: values.map((v, i) => ({ id: ids[i] as number, topic: "t", message_key: "k", message_value: Buffer.from(v) })),
  };
}

/** The relay's reads of the outbox table so far (the pool's queries are counted by text). */
let outboxReads = 0;

const remaining = async () => Number((await db.pool.query("SELECT count(*) AS n FROM relay_outbox")).rows[0]?.n);

function relay(
  sent: Sent[],
  o: { idleMs: number; deleteIntervalMs: number; batchSize?: number; maxSendBytes?: number },
  sendBytes: number[] = [],
  sendMs = 0,
): OutboxRelay {
  const counted = watchedPool(db.pool, (text) => {
    if (/^\s*SELECT id, topic/.test(text)) outboxReads++;
  });
  return new OutboxRelay({
    pool: counted,
    producer: recordingProducer(sent, sendBytes, sendMs),
    logger: createLogger("test", "silent"),
    lockId: 9_000_101,
    table: "relay_outbox",
    partitioned: true,
    ...o,
  });
}

describe("OutboxRelay", () => {
  it("sends each row once, in id order, in chunks, and deletes the sent rows when due rather than per pass", async () => {
    const sent: Sent[] = [];
    const r = relay(sent, { idleMs: 60_000, deleteIntervalMs: 60_000, batchSize: 4 });
    await enqueue(["a", "b", "c", "d", "e", "f"], 2);
    r.start();
    try {
      await waitFor("six sent", async () => sent.length === 6, 10_000);
      // Six rows in chunks of four: the first delete is at once (none before), the next is not due.
      await enqueue(["g"]);
      r.notify();
      await waitFor("seven sent", async () => sent.length === 7, 10_000);
      r.notify(); // a pass with nothing new: nothing is sent twice
      await new Promise((res) => setTimeout(res, 200));
      expect(sent.map((s) => s.value)).toEqual(["a", "b", "c", "d", "e", "f", "g"]);
      expect(sent[0]).toEqual({ topic: "t", key: "k", value: "a", partition: 2 });
      expect(sent[6]).toEqual({ topic: "t", key: "k", value: "g" });
      expect(await remaining()).toBe(3); // e, f and g: sent, their delete not yet due
    } finally {
      await r.stop();
    }
    expect(await remaining()).toBe(0); // a clean stop deletes what it sent
  });

  it("keeps each send under maxSendBytes (a row alone may be bigger), in order, none left behind", async () => {
    const sent: Sent[] = [];
    const sendBytes: number[] = [];
    const r = relay(sent, { idleMs: 60_000, deleteIntervalMs: 0, maxSendBytes: 1000 }, sendBytes);
    const values = ["a".repeat(400), "b".repeat(400), "c".repeat(400), "d".repeat(1500), "e".repeat(10), "f".repeat(990)];
    await enqueue(values);
    r.start();
    try {
      await waitFor("all sent", async () => sent.length === values.length, 10_000);
      expect(sent.map((m) => m.value)).toEqual(values);
      // a+b, then c (c+d would pass 1000), then d alone (bigger than the limit), then e+f.
      expect(sendBytes).toEqual([800, 400, 1500, 1000]);
      await waitFor("deleted", async () => (await remaining()) === 0, 5_000);
    } finally {
      await r.stop();
    }
  });

  it("deletes sent rows on a quiet moment (a poll with nothing notified)", async () => {
    const sent: Sent[] = [];
    const r = relay(sent, { idleMs: 300, deleteIntervalMs: 60_000 });
    r.start();
    try {
      await enqueue(["q1"]);
      r.notify();
      await waitFor("sent", async () => sent.length === 1, 10_000);
      await enqueue(["q2"]);
      r.notify();
      await waitFor("sent", async () => sent.length === 2, 10_000);
      await waitFor("deleted after a quiet poll", async () => (await remaining()) === 0, 5_000);
    } finally {
      await r.stop();
    }
  });

  it("relays at once what was committed and notified while it was sending, not at the next poll", async () => {
    const sent: Sent[] = [];
    // Each send takes 300 ms; the poll is a minute away.
    const r = relay(sent, { idleMs: 60_000, deleteIntervalMs: 60_000 }, [], 300);
    r.start();
    try {
      await enqueue(["n1"]);
      r.notify();
      await new Promise((res) => setTimeout(res, 100)); // n1's send is in hand
      await enqueue(["n2"]);
      r.notify();
      await waitFor("n2 sent without waiting for the poll", async () => sent.length === 2, 5_000);
      expect(sent.map((s) => s.value)).toEqual(["n1", "n2"]);
    } finally {
      await r.stop();
    }
  });

  it("sends rows handed over by their writer without reading them back, when they are the next ones", async () => {
    const sent: Sent[] = [];
    const r = relay(sent, { idleMs: 60_000, deleteIntervalMs: 0 });
    r.start();
    try {
      await enqueue(["h0"]);
      r.notify();
      await waitFor("h0 sent", async () => sent.length === 1, 10_000);
      const reads = outboxReads;
      // Two rounds committed before the relay takes them: handed over together, no read.
      r.handOff(await enqueueCommitted(["h1", "h2"]));
      r.handOff(await enqueueCommitted(["h3"]));
      await waitFor("h1 to h3 sent", async () => sent.length === 4, 10_000);
      expect(outboxReads).toBe(reads);
      // A row queued by someone else in between: the relay reads the table, in id order, each row once.
      await enqueue(["other"]);
      r.handOff(await enqueueCommitted(["h4"]));
      await waitFor("other and h4 sent", async () => sent.length === 6, 10_000);
      expect(outboxReads).toBeGreaterThan(reads);
      expect(sent.map((m) => m.value)).toEqual(["h0", "h1", "h2", "h3", "other", "h4"]);
      await waitFor("deleted", async () => (await remaining()) === 0, 5_000);
    } finally {
      await r.stop();
    }
  });

  it("reads the table when more rows were handed over than one read takes", async () => {
    const sent: Sent[] = [];
    const r = relay(sent, { idleMs: 60_000, deleteIntervalMs: 0, batchSize: 2 }, [], 300);
    r.start();
    try {
      await enqueue(["s0"]);
      r.notify();
      await new Promise((res) => setTimeout(res, 100)); // s0's send is in hand
      const reads = outboxReads;
      for (const v of ["s1", "s2", "s3"]) r.handOff(await enqueueCommitted([v]));
      await waitFor("s1 to s3 sent", async () => sent.length === 4, 10_000);
      // Three rows are more than a read of two: they were let go and read from the table, in order.
      expect(outboxReads).toBeGreaterThan(reads);
      expect(sent.map((m) => m.value)).toEqual(["s0", "s1", "s2", "s3"]);
      await waitFor("deleted", async () => (await remaining()) === 0, 5_000);
    } finally {
      await r.stop();
    }
  });

  it("reads the table rather than trust rows handed over before it holds the lock", async () => {
    const sent: Sent[] = [];
    const r = relay(sent, { idleMs: 200, deleteIntervalMs: 0 });
    const early = await enqueueCommitted(["e1"]);
    expect(early.before).toBe(0); // the table is empty: were the rows kept, they would pass as the next ones
    const reads = outboxReads;
    r.handOff(early); // not started: not holding the lock
    r.start();
    try {
      await waitFor("e1 sent", async () => sent.length === 1, 10_000);
      expect(outboxReads).toBeGreaterThan(reads);
      expect(sent.map((m) => m.value)).toEqual(["e1"]);
    } finally {
      await r.stop();
    }
  });

  it("a new lock holder sends again what the previous one sent but had not deleted", async () => {
    const first: Sent[] = [];
    const a = relay(first, { idleMs: 60_000, deleteIntervalMs: 60_000 });
    a.start();
    await enqueue(["x1"]);
    a.notify();
    await waitFor("x1 sent", async () => first.length === 1, 10_000);
    await enqueue(["x2"]);
    a.notify();
    await waitFor("x2 sent", async () => first.length === 2, 10_000);
    expect(await remaining()).toBe(1); // x2 sent, not deleted: as a crash would leave it
    // A crash: the relay's connection goes away without its clean stop (the lock goes with it).
    await db.pool.query("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1", [9_000_101]);
    const second: Sent[] = [];
    const b = relay(second, { idleMs: 200, deleteIntervalMs: 60_000 });
    b.start();
    try {
      await waitFor("x2 sent again", async () => second.some((s) => s.value === "x2"), 10_000);
      expect(second.map((s) => s.value)).toEqual(["x2"]);
    } finally {
      await b.stop();
      await a.stop();
    }
  });
});
