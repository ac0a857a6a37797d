/**
 * Where a consumer starts reading is decided by its PostgreSQL, not by the offset its Kafka group
 * committed: a new or restored database (a partner re-bootstrapping, a hub database rebuilt) must
 * not skip what the group had read into the database it replaced.
 */
import type { Producer } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startExactlyOnceConsumer } from "../../services/shared/exactly-once-consumer.ts";
import { createLogger } from "../../services/shared/logging.ts";
import { waitFor } from "../support/processes.ts";
import { freshDatabase, freshTopics, kafkaAs } from "../support/stack.ts";
import type { TestDatabase } from "../support/stack.ts";

const kafka = kafkaAs("test-exactly-once");
let producer: Producer;
let topic: string;
let namespace: string;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  const fresh = await freshTopics([], 1);
  topic = fresh.names.submitted;
  namespace = fresh.namespace;
  producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic, acks: -1, messages: Array.from({ length: 10 }, (_, i) => ({ key: `k${i}`, value: `v${i}` })) });
});
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await producer.disconnect();
});

/** Runs a consumer of `topic` as `groupId` against `db` until it has applied offset 9; returns the offsets it applied. */
async function consume(db: TestDatabase, groupId: string): Promise<number[]> {
  const applied: number[] = [];
  const consumer = await startExactlyOnceConsumer({
    kafka,
    pool: db.pool,
    groupId,
    topic,
    logger: createLogger("test", "silent"),
    // The step hands over only what is at or past the stored offset.
    apply: async (_tx, batch) => {
      applied.push(...batch.messages.map((m) => Number(m.offset)));
      return { result: null };
    },
  });
  cleanups.push(() => consumer.disconnect());
  try {
    await waitFor("offset 9 applied", async () => applied.includes(9), 30_000);
  } finally {
    await consumer.disconnect();
  }
  return applied;
}

/** The group's committed Kafka offset, as a previous database's consumer would have left it. */
async function commitInKafka(groupId: string, offset: number): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.setOffsets({ groupId, topic, partitions: [{ partition: 0, offset: String(offset) }] });
  } finally {
    await admin.disconnect();
  }
}

describe("exactly-once consumer start position", () => {
  it("a database with no stored offset reads from the start, though the group committed the end in Kafka", async () => {
    const db = await freshDatabase("eo-new");
    cleanups.push(() => db.drop());
    const groupId = `${namespace}.eo-new`;
    await commitInKafka(groupId, 10);
    expect(await consume(db, groupId)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it("a stored offset wins over Kafka's, ahead of it or behind it", async () => {
    for (const [kafkaOffset, stored] of [
      [10, 4],
      [2, 7],
    ] as const) {
      const db = await freshDatabase("eo-stored");
      cleanups.push(() => db.drop());
      const groupId = `${namespace}.eo-${kafkaOffset}-${stored}`;
      await commitInKafka(groupId, kafkaOffset);
      await db.pool.query("INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset) VALUES ($1, $2, 0, $3)", [
        groupId,
        topic,
        stored,
      ]);
      const applied = await consume(db, groupId);
      expect(applied).toEqual(Array.from({ length: 10 - stored }, (_, i) => stored + i));
    }
  });
});
