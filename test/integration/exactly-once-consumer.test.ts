/**
 * Where a consumer starts reading is decided by its PostgreSQL, not by the offset its Kafka group
 * committed: a new or restored database (a partner re-bootstrapping, a hub database rebuilt) must
 * not skip what the group had read into the database it replaced. Also how rounds are formed and
 * paced, re-reads, and that a consumer kafkajs gives up on is replaced, even at its first join.
 */
import type { Producer } from "kafkajs";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startExactlyOnceConsumer } from "../../services/shared/exactly-once-consumer.ts";
import type { RunningConsumer } from "../../services/shared/exactly-once-consumer.ts";
import { applyAccessPlan, consumerGroups, partnerGrants, partnerPrincipal } from "../../services/shared/kafka-access.ts";
import { createKafka, kafkaConnection, provisionTopics } from "../../services/shared/kafka.ts";
import { createLogger } from "../../services/shared/logging.ts";
import { feedTopicSpec, LOCAL_TOPIC_PLAN, topicNames } from "../../services/shared/topics.ts";
import { waitFor } from "../support/processes.ts";
import { freshDatabase, freshTopics, kafkaAs, principalEnv, stackEnv, uniqueName } from "../support/stack.ts";
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
    apply: async (_tx, batches) => {
      for (const batch of batches) applied.push(...batch.messages.map((m) => Number(m.offset)));
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

/** A consumer of `topic` on a fresh database that records each round's start and size. */
async function roundRecorder(
  name: string,
  topicName: string,
  options: { minRoundIntervalMs: number; trickleRoundIntervalMs?: number; maxBytesPerPartition?: number; maxRoundMessages?: number },
): Promise<{ rounds: { at: number; messages: number; values: string[] }[]; applied: () => number; consumer: RunningConsumer }> {
  const db = await freshDatabase(name);
  cleanups.push(() => db.drop());
  const rounds: { at: number; messages: number; values: string[] }[] = [];
  let applied = 0;
  const consumer = await startExactlyOnceConsumer({
    kafka,
    pool: db.pool,
    groupId: `${namespace}.${name}`,
    topic: topicName,
    logger: createLogger("test", "silent"),
    ...options,
    apply: async (_tx, batches) => {
      const messages = batches.reduce((n, b) => n + b.messages.length, 0);
      rounds.push({ at: Date.now(), messages, values: batches.flatMap((b) => b.messages.map((m) => String(m.value))) });
      applied += messages;
      return { result: null };
    },
  });
  cleanups.push(() => consumer.disconnect());
  return { rounds, applied: () => applied, consumer };
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

describe("exactly-once consumer rounds", () => {
  let multi: string;
  beforeAll(async () => {
    multi = (await freshTopics([], 3)).names.submitted;
    // Keys spread over the three partitions; everything is there before the consumer starts.
    await producer.send({ topic: multi, acks: -1, messages: Array.from({ length: 30 }, (_, i) => ({ key: `m${i}`, value: `v${i}` })) });
  });

  it("applies the partitions of one fetch as one round, and keeps Kafka's committed offsets in step", async () => {
    const db = await freshDatabase("eo-rounds");
    cleanups.push(() => db.drop());
    const groupId = `${namespace}.eo-rounds`;
    const rounds: { partition: number; offsets: number[] }[][] = [];
    let committed = 0;
    const consumer = await startExactlyOnceConsumer({
      kafka,
      pool: db.pool,
      groupId,
      topic: multi,
      logger: createLogger("test", "silent"),
      apply: async (_tx, batches) => {
        rounds.push(batches.map((b) => ({ partition: b.partition, offsets: b.messages.map((m) => Number(m.offset)) })));
        return { result: null };
      },
      afterCommit: () => committed++,
    });
    cleanups.push(() => consumer.disconnect());
    const applied = () => rounds.flat().reduce((n, b) => n + b.offsets.length, 0);
    try {
      await waitFor("all 30 applied", async () => applied() === 30, 30_000);
    } finally {
      await consumer.disconnect();
    }
    // The first fetch held all three partitions: one transaction, partitions in order.
    expect(rounds[0]?.map((b) => b.partition)).toEqual([0, 1, 2]);
    expect(committed).toBe(rounds.length);
    for (const partition of [0, 1, 2]) {
      const offsets = rounds
        .flat()
        .filter((b) => b.partition === partition)
        .flatMap((b) => b.offsets);
      expect(offsets).toEqual(Array.from({ length: offsets.length }, (_, i) => i));
    }
    // Kafka's committed offsets reach PostgreSQL's: the last ones are committed on disconnect.
    const { rows } = await db.pool.query<{ partition: number; next_offset: number }>(
      "SELECT partition, next_offset FROM consumer_offsets WHERE consumer_group = $1 ORDER BY partition",
      [groupId],
    );
    const admin = kafka.admin();
    await admin.connect();
    try {
      const [kafkaOffsets] = await admin.fetchOffsets({ groupId, topics: [multi] });
      const inKafka = (kafkaOffsets?.partitions ?? [])
        .map((p) => [p.partition, Number(p.offset)])
        .sort((a, b) => Number(a[0]) - Number(b[0]));
      expect(inKafka).toEqual(rows.map((r) => [r.partition, r.next_offset]));
    } finally {
      await admin.disconnect();
    }
  });

  it("splits a fetch into rounds of at most maxRoundMessages, never splitting a partition's batch", async () => {
    const db = await freshDatabase("eo-split");
    cleanups.push(() => db.drop());
    const rounds: number[][] = [];
    const consumer = await startExactlyOnceConsumer({
      kafka,
      pool: db.pool,
      groupId: `${namespace}.eo-split`,
      topic: multi,
      logger: createLogger("test", "silent"),
      maxRoundMessages: 12,
      apply: async (_tx, batches) => {
        rounds.push(batches.map((b) => b.messages.length));
        return { result: null };
      },
    });
    cleanups.push(() => consumer.disconnect());
    const applied = () => rounds.flat().reduce((a, b) => a + b, 0);
    try {
      await waitFor("all 30 applied", async () => applied() === 30, 30_000);
    } finally {
      await consumer.disconnect();
    }
    // 30 messages in three partitions of 7 to 13 (murmur2 of the keys): never one round.
    expect(rounds.length).toBeGreaterThan(1);
    for (const r of rounds) expect(r.length === 1 || r.reduce((a, b) => a + b, 0) <= 12, `round ${r.join("+")}`).toBe(true);
  });

  it("while busy starts rounds no closer together than minRoundIntervalMs, each with what came meanwhile; after small rounds at once", async () => {
    const { rounds, applied, consumer } = await roundRecorder("eo-interval", topic, { minRoundIntervalMs: 400 });
    let busyFrom = 0;
    let quietFrom = 0;
    const sentAt = new Map<string, number>();
    try {
      // Waits allow for a retry back-off of up to 30 s (KAFKA_RETRY_POLICY): this file runs first,
      // while a freshly started broker may still be loading its group coordinator.
      await waitFor("first round", async () => applied() >= 10, 90_000);
      // Busy: twenty messages every 50 ms. Without the interval each burst would be a round of its own.
      busyFrom = Date.now();
      for (let i = 0; i < 12; i++) {
        sentAt.set(`b${i}`, Date.now());
        await producer.send({ topic, acks: -1, messages: Array.from({ length: 20 }, (_, j) => ({ key: "busy", value: `b${i}.${j}` })) });
        await new Promise((r) => setTimeout(r, 50));
      }
      await waitFor("busy messages applied", async () => applied() >= 250, 90_000);
      // Quiet, then a trickle: one message every 150 ms, each applied on its own without waiting.
      await new Promise((r) => setTimeout(r, 600));
      quietFrom = Date.now();
      for (let i = 0; i < 4; i++) {
        // Counted before the send: the fetch answering it can be applied before send() returns.
        const before = applied();
        await producer.send({ topic, acks: -1, messages: [{ key: "trickle", value: `t${i}` }] });
        await waitFor("trickle message applied", async () => applied() > before, 90_000);
        await new Promise((r) => setTimeout(r, 150));
      }
    } finally {
      await consumer.disconnect();
    }
    // While busy rounds start at least 400 ms apart, so a window of D ms holds at most D / 400 + 1.
    const busy = rounds.filter((r) => r.at >= busyFrom && r.at < quietFrom);
    const window = (busy.at(-1)?.at ?? busyFrom) - busyFrom;
    expect(busy.length).toBeLessThanOrEqual(Math.floor(window / 400) + 1);
    expect(busy.length).toBeLessThan(12);
    // Each round is fetched once the interval has passed, not before waiting it out, so no burst waits
    // much longer than one interval (a fetch held for the interval kept some about two).
    const waited = busy.flatMap((r) => r.values.map((v) => r.at - (sentAt.get(v.split(".")[0] ?? "") ?? r.at)));
    expect(Math.max(...waited)).toBeLessThan(600);
    expect(rounds.filter((r) => r.at >= quietFrom).map((r) => r.messages)).toEqual([1, 1, 1, 1]);
  }, 300_000);

  it("at a trickle fetches again only trickleRoundIntervalMs after a small round; a first message at once", async () => {
    const { names } = await freshTopics([], 1);
    const trickleTopic = names.submitted;
    const { rounds, applied, consumer } = await roundRecorder("eo-trickle", trickleTopic, {
      minRoundIntervalMs: 1_000,
      trickleRoundIntervalMs: 400,
    });
    let from = 0;
    let firstAfter = 0;
    try {
      await producer.send({ topic: trickleTopic, acks: -1, messages: [{ key: "t", value: "first" }] });
      await waitFor("first round", async () => applied() >= 1, 90_000);
      // Quiet for longer than the interval, then one message every 50 ms.
      await new Promise((r) => setTimeout(r, 800));
      from = Date.now();
      for (let i = 0; i < 16; i++) {
        await producer.send({ topic: trickleTopic, acks: -1, messages: [{ key: "t", value: `t${i}` }] });
        if (i === 0) {
          await waitFor("first trickle message applied", async () => applied() >= 2, 90_000);
          firstAfter = Date.now() - from;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      await waitFor("trickle applied", async () => applied() >= 17, 90_000);
    } finally {
      await consumer.disconnect();
    }
    // The first message after a quiet spell is not held back; the rest share rounds about 400 ms apart.
    expect(firstAfter).toBeLessThan(300);
    const trickle = rounds.filter((r) => r.at >= from);
    expect(trickle.length).toBeLessThanOrEqual(6);
    for (let i = 1; i < trickle.length; i++) expect((trickle[i]?.at ?? 0) - (trickle[i - 1]?.at ?? 0)).toBeGreaterThanOrEqual(380);
  }, 300_000);

  it("does not wait out minRoundIntervalMs while a backlog is behind the round in hand", async () => {
    const { names } = await freshTopics([], 1);
    const backlogTopic = names.submitted;
    // 30 record batches of 20; fetches of at most ~1 KB bring one or two of them at a time.
    for (let i = 0; i < 30; i++) {
      await producer.send({
        topic: backlogTopic,
        acks: -1,
        messages: Array.from({ length: 20 }, (_, j) => ({ key: "b", value: `m${i}.${j}` })),
      });
    }
    const { rounds, applied, consumer } = await roundRecorder("eo-backlog", backlogTopic, {
      minRoundIntervalMs: 1_000,
      maxBytesPerPartition: 1_000,
    });
    try {
      await waitFor("backlog applied", async () => applied() >= 600, 30_000);
    } finally {
      await consumer.disconnect();
    }
    // Waiting 1 s between busy rounds would take at least (rounds - 2) s; with the backlog rule the
    // rounds that had messages behind them follow one another at once.
    expect(rounds.length).toBeGreaterThan(5);
    const span = (rounds.at(-1)?.at ?? 0) - (rounds[0]?.at ?? 0);
    expect(span).toBeLessThan((rounds.length - 2) * 1_000);
  });

  it("does not wait out minRoundIntervalMs after a round of a quarter of maxRoundMessages or more", async () => {
    const { names } = await freshTopics([], 1);
    const burstTopic = names.submitted;
    const { rounds, applied, consumer } = await roundRecorder("eo-full-round", burstTopic, {
      minRoundIntervalMs: 1_000,
      maxRoundMessages: 80,
    });
    let from = 0;
    try {
      await producer.send({ topic: burstTopic, acks: -1, messages: [{ key: "f", value: "first" }] });
      await waitFor("first round", async () => applied() >= 1, 90_000);
      // Bursts of 24 (each round at least a quarter of 80) every 100 ms, each produced whole, as an
      // upstream relay does: nothing is behind a round when it is fetched, so only its size tells.
      from = Date.now();
      for (let i = 0; i < 16; i++) {
        await producer.send({
          topic: burstTopic,
          acks: -1,
          messages: Array.from({ length: 24 }, (_, j) => ({ key: "f", value: `f${i}.${j}` })),
        });
        await new Promise((r) => setTimeout(r, 100));
      }
      await waitFor("bursts applied", async () => applied() >= 1 + 16 * 24, 90_000);
    } finally {
      await consumer.disconnect();
    }
    // Waiting 1 s after each round of 24 or more would allow at most window / 1000 + 1 rounds.
    const bursts = rounds.filter((r) => r.at >= from);
    const window = (bursts.at(-1)?.at ?? from) - from;
    expect(bursts.length).toBeGreaterThan(Math.floor(window / 1_000) + 2);
  }, 300_000);
});

describe("exactly-once consumer re-reads", () => {
  it("fetches a partition again from an earlier next offset the apply stored, pausing while nothing new arrives", async () => {
    const { names } = await freshTopics([], 1);
    const reread = names.submitted;
    await producer.send({ topic: reread, acks: -1, messages: Array.from({ length: 10 }, (_, i) => ({ value: `v${i}` })) });
    const db = await freshDatabase("eo-reread");
    cleanups.push(() => db.drop());
    const groupId = `${namespace}.eo-reread`;
    const applied: number[] = [];
    const rounds: { at: number; offsets: number[] }[] = [];
    const consumer = await startExactlyOnceConsumer({
      kafka,
      pool: db.pool,
      groupId,
      topic: reread,
      logger: createLogger("test", "silent"),
      // Offsets from 5 on wait for a "seal" message: until it comes they are left to be read again.
      apply: async (_tx, batches) => {
        const positions = new Map<number, { nextOffset: number }>();
        for (const b of batches) {
          const offsets = b.messages.map((m) => Number(m.offset));
          rounds.push({ at: Date.now(), offsets });
          const sealed = b.messages.some((m) => m.value?.toString() === "seal");
          const waiting = sealed ? [] : offsets.filter((o) => o >= 5);
          applied.push(...offsets.filter((o) => !waiting.includes(o)));
          if (waiting.length) positions.set(b.partition, { nextOffset: waiting[0] as number });
        }
        return { result: null, positions };
      },
    });
    cleanups.push(() => consumer.disconnect());
    const reads = (offset: number) => rounds.filter((r) => r.offsets.includes(offset)).length;
    try {
      await waitFor("offset 5 read again", async () => reads(5) >= 3, 30_000);
      expect(applied).toEqual([0, 1, 2, 3, 4]);
      const stored = await db.pool.query<{ next_offset: string }>(
        "SELECT next_offset::text FROM consumer_offsets WHERE consumer_group = $1",
        [groupId],
      );
      expect(stored.rows.map((r) => r.next_offset)).toEqual(["5"]);
      // Nothing new arrives: the re-reads back off (50 ms doubling to 1 s), not a loop of rounds.
      const from = Date.now();
      await new Promise((r) => setTimeout(r, 2_000));
      const idle = rounds.filter((r) => r.at >= from).length;
      expect(idle).toBeGreaterThan(0);
      expect(idle).toBeLessThanOrEqual(6);
      expect(rounds.every((r) => r.offsets[0] === 0 || r.offsets[0] === 5)).toBe(true);
      await producer.send({ topic: reread, acks: -1, messages: [{ value: "seal" }] });
      await waitFor("the sealed tail applied", async () => applied.includes(10), 30_000);
    } finally {
      await consumer.disconnect();
    }
    // Each offset applied once: the re-reads handed over only what was at or past the stored offset.
    expect(applied).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(rounds.at(-1)?.offsets).toEqual([5, 6, 7, 8, 9, 10]);
    const stored = await db.pool.query<{ next_offset: string }>(
      "SELECT next_offset::text FROM consumer_offsets WHERE consumer_group = $1",
      [groupId],
    );
    expect(stored.rows.map((r) => r.next_offset)).toEqual(["11"]);
  });
});

describe("exactly-once consumer crashes", () => {
  it("starts a new consumer when the first join fails for good, as after any later crash", async () => {
    // A group the broker refuses is reported by kafkajs as "no group coordinator": a crash it does
    // not retry, met here at the very first join (as a restarted service meets a restarting broker).
    const ns = uniqueName("t");
    const names = topicNames(ns);
    const grants = partnerGrants("partner-x", names, ns);
    const admin = kafka.admin();
    await admin.connect();
    try {
      await provisionTopics(admin, [feedTopicSpec("partner-x", { ...LOCAL_TOPIC_PLAN, partitions: 1 }, names)]);
      await applyAccessPlan(
        admin,
        grants.filter((g) => g.resource === "topic"),
      );
    } finally {
      await admin.disconnect();
    }
    const topic = names.feed("partner-x");
    await producer.send({ topic, acks: -1, messages: Array.from({ length: 10 }, (_, i) => ({ value: `v${i}` })) });
    const db = await freshDatabase("eo-crash");
    cleanups.push(() => db.drop());
    const logged: string[] = [];
    const applied: number[] = [];
    const consumer = await startExactlyOnceConsumer({
      kafka: createKafka({
        ...kafkaConnection({ KAFKA_BROKERS: stackEnv().brokers, ...principalEnv(partnerPrincipal("partner-x")) }),
        clientId: "test-exactly-once-crash",
        retries: 0,
      }),
      pool: db.pool,
      groupId: consumerGroups(ns).sink("partner-x"),
      topic,
      logger: pino({ level: "error" }, { write: (line: string) => void logged.push(line) }),
      apply: async (_tx, batches) => {
        for (const batch of batches) applied.push(...batch.messages.map((m) => Number(m.offset)));
        return { result: null };
      },
    });
    cleanups.push(() => consumer.disconnect());
    try {
      await waitFor("the crash noticed", async () => logged.some((l) => l.includes("consumer stopped for good")), 30_000);
      expect(applied).toEqual([]);
      const granting = kafka.admin();
      await granting.connect();
      await applyAccessPlan(
        granting,
        grants.filter((g) => g.resource === "group"),
      ).finally(() => granting.disconnect());
      await waitFor("offset 9 applied by a new consumer", async () => applied.includes(9), 60_000);
    } finally {
      await consumer.disconnect();
    }
    expect(applied).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});
