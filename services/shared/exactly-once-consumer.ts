/**
 * The kafkajs side of the exactly-once step (exactly-once-step.ts): a consumer whose source of
 * truth for "what was applied" is the service's PostgreSQL (consumer_offsets, written in the same
 * transaction as the state change). On every partition assignment it seeks to the stored offset
 * (the start when there is none); Kafka's committed offset is kept in step afterwards only so that
 * lag shows up in the usual tools. Each batch goes through applyExactlyOnce; a service gives only
 * its apply function (and, optionally, work before the transaction and after the commit).
 */
import type { Consumer, EachBatchPayload, Kafka } from "kafkajs";
import { applyExactlyOnce, storedOffsets } from "./exactly-once-step.ts";
import type { ExactlyOnceStep, FetchedMessage, PartitionBatch, Positioned, StepOutcome } from "./exactly-once-step.ts";
import type { Logger } from "./logging.ts";
import type { Pool, Queryable } from "./postgres.ts";

export interface ExactlyOnceConsumerOptions<T extends Positioned, R> extends ExactlyOnceStep<T, R> {
  readonly kafka: Kafka;
  readonly pool: Pool;
  readonly groupId: string;
  readonly topic: string;
  readonly logger: Logger;
  /**
   * Work before the transaction, holding no lock (dedup checks signatures here): turns the fetched
   * messages into what `apply` takes. Without it `apply` takes the fetched messages as they are.
   */
  readonly prepare?: (batch: PartitionBatch) => Promise<readonly T[]>;
  /** After each batch's COMMIT (and its Kafka offset commit): logging, waking an outbox relay. */
  readonly afterCommit?: (outcome: StepOutcome<R>, batch: { readonly topic: string; readonly partition: number }) => void;
  readonly maxBytesPerPartition?: number;
  readonly sessionTimeoutMs?: number;
}

/** A running consumer; `disconnect` waits for the batch in hand to commit or roll back. */
export interface RunningConsumer {
  disconnect(): Promise<void>;
  /** Partitions held by a `hold` result of the apply function (on the current kafkajs consumer). */
  pausedPartitions(): number[];
  /** Fetches a held partition again, from the offset stored in PostgreSQL. */
  resumePartition(partition: number): Promise<void>;
}

/**
 * Starts the consumer and keeps it running: kafkajs gives up for good on some errors (a broker
 * restart can end in "Failed to find group coordinator"), which would leave a live process that
 * consumes nothing. Such a crash is logged and a fresh consumer starts after a pause; it resumes
 * from the stored offsets like any other.
 */
export async function startExactlyOnceConsumer<T extends Positioned = FetchedMessage, R = unknown>(
  o: ExactlyOnceConsumerOptions<T, R>,
): Promise<RunningConsumer> {
  let current: Consumer | null = null;
  let stopped = false;
  let restartTimer: NodeJS.Timeout | null = null;
  // Held partitions of the current consumer; a fresh consumer starts with none (its first batch of
  // a partition that must stay held pauses it again).
  let paused = new Set<number>();
  const launch = async (): Promise<void> => {
    const held = new Set<number>();
    paused = held;
    const consumer = await runConsumer(o, held);
    current = consumer;
    consumer.on(consumer.events.CRASH, (event) => {
      if (event.payload.restart || stopped) return; // kafkajs restarts it itself
      o.logger.error({ err: event.payload.error }, "consumer stopped for good; starting a new one");
      restartTimer = setTimeout(() => {
        void consumer
          .disconnect()
          .catch(() => undefined)
          .then(() => (stopped ? undefined : launch()))
          .catch((err: unknown) => {
            o.logger.error({ err }, "consumer restart failed; retrying");
            restartTimer = setTimeout(() => void launch().catch(() => undefined), 5_000);
          });
      }, 2_000);
    });
  };
  await launch();
  return {
    async disconnect() {
      stopped = true;
      if (restartTimer) clearTimeout(restartTimer);
      await current?.disconnect();
    },
    pausedPartitions() {
      return [...paused].sort((a, b) => a - b);
    },
    async resumePartition(partition: number) {
      const consumer = current;
      if (!consumer || !paused.has(partition)) return;
      const next = (await storedOffsets(o.pool, o.groupId, o.topic)).get(partition) ?? 0;
      consumer.seek({ topic: o.topic, partition, offset: String(next) });
      consumer.resume([{ topic: o.topic, partitions: [partition] }]);
      paused.delete(partition);
      o.logger.info({ partition, offset: next }, "partition resumed from its stored offset");
    },
  };
}

async function runConsumer<T extends Positioned, R>(o: ExactlyOnceConsumerOptions<T, R>, held: Set<number>): Promise<Consumer> {
  const consumer = o.kafka.consumer({
    groupId: o.groupId,
    sessionTimeout: o.sessionTimeoutMs ?? 30_000,
    heartbeatInterval: Math.min(3_000, Math.floor((o.sessionTimeoutMs ?? 30_000) / 3)),
    // Short fetch waits keep rebalances quick: kafkajs heartbeats only between fetches.
    maxWaitTimeInMs: 500,
    maxBytesPerPartition: o.maxBytesPerPartition ?? 1_048_576,
    allowAutoTopicCreation: false,
  });
  await consumer.connect();
  await consumer.subscribe({ topic: o.topic, fromBeginning: true });

  // Every assignment positions each partition from PostgreSQL, never from Kafka's committed offset:
  // a partition with no stored offset has had nothing applied to this database (a new or restored
  // one, e.g. a partner re-bootstrapping), so it is read from the start whatever the group
  // committed before. Offset 0 below the log start is reset to the earliest offset (fromBeginning).
  let positioned: Promise<void> = Promise.resolve();
  consumer.on(consumer.events.GROUP_JOIN, (event) => {
    const assigned = (event.payload.memberAssignment[o.topic] ?? []) as number[];
    positioned = storedOffsets(o.pool, o.groupId, o.topic).then((stored) => {
      for (const partition of assigned) consumer.seek({ topic: o.topic, partition, offset: String(stored.get(partition) ?? 0) });
      o.logger.info({ partitions: assigned }, "partitions assigned; resuming from stored offsets");
    });
    positioned.catch((err: unknown) => o.logger.error({ err }, "could not read stored offsets"));
  });

  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload) => {
      if (!isRunning() || batch.messages.length === 0) return;
      // A batch fetched before the assignment's seek landed starts at the committed offset: drop it
      // (stale once the seek is registered) and let kafkajs fetch again from the stored offset. If the
      // stored offsets could not be read, throwing makes kafkajs restart the consumer and rejoin.
      await positioned;
      if (isStale()) return;
      const fetched: PartitionBatch = { topic: batch.topic, partition: batch.partition, messages: batch.messages };
      // Without `prepare`, T is FetchedMessage (the type parameter's default).
      const messages = o.prepare ? await o.prepare(fetched) : (fetched.messages as readonly Positioned[] as readonly T[]);
      const outcome = await applyExactlyOnce(o.pool, o.groupId, { ...fetched, messages }, o);
      if (outcome.hold) {
        // Held: leave the batch unresolved and stop fetching the partition, so that it is read
        // again from its stored offset once resumed (not from wherever the fetch had got to).
        consumer.pause([{ topic: batch.topic, partitions: [batch.partition] }]);
        held.add(batch.partition);
      } else {
        const last = batch.messages[batch.messages.length - 1];
        if (last) resolveOffset(last.offset);
      }
      if (outcome.nextOffset !== null) {
        await consumer
          .commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: outcome.nextOffset }])
          .catch((err: unknown) => o.logger.warn({ err }, "Kafka offset commit failed (PostgreSQL holds the truth)"));
      }
      o.afterCommit?.(outcome, fetched);
      await heartbeat();
    },
  });
  return consumer;
}

/** True once the group's stored offsets reach the end of every partition of the topic (no lag). */
export async function consumerCaughtUp(kafka: Kafka, db: Queryable, group: string, topic: string): Promise<boolean> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const ends = await admin.fetchTopicOffsets(topic);
    const { rows } = await db.query<{ partition: number; next_offset: number }>(
      "SELECT partition, next_offset FROM consumer_offsets WHERE consumer_group = $1 AND topic = $2",
      [group, topic],
    );
    const stored = new Map(rows.map((r) => [r.partition, Number(r.next_offset)]));
    return ends.every((e) => Number(e.high) === 0 || (stored.get(e.partition) ?? 0) >= Number(e.high));
  } finally {
    await admin.disconnect();
  }
}
