/**
 * The exactly-once step, written once: each batch of a partition is applied in one PostgreSQL
 * transaction that takes the service's apply lock (if it has one), row-locks the partition's stored
 * next offset (consumer_offsets), hands the service's apply function only the messages at or past
 * that offset, and stores the next offset before COMMIT. The stored offset, not Kafka's, decides
 * what was applied: a redelivered message is left out, and a crash or an error anywhere leaves all
 * of the batch or none of it. exactly-once-consumer.ts feeds it from Kafka.
 */
import { inTransaction } from "./postgres.ts";
import type { Pool, PoolClient } from "./postgres.ts";

/** A message as fetched from Kafka. */
export interface FetchedMessage {
  readonly offset: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
}

/** Anything with the Kafka offset it came from. */
export interface Positioned {
  readonly offset: string | number;
}

export interface PartitionBatch<T extends Positioned = FetchedMessage> {
  readonly topic: string;
  readonly partition: number;
  readonly messages: readonly T[];
}

/** What the apply function gets, inside the transaction. */
export interface UnappliedBatch<T extends Positioned> extends PartitionBatch<T> {
  /** The messages at or past the stored offset, in the order fetched: none of them is applied yet. */
  readonly messages: readonly T[];
  /** Messages of the batch below the stored offset (already applied: a redelivery), left out. */
  readonly redelivered: number;
  /** The partition's stored next offset, row-locked until COMMIT. */
  readonly storedOffset: number;
}

/** What the apply function returns. */
export interface Applied<R> {
  readonly result: R;
  /**
   * Where the next batch starts, stored in the same transaction. By default just after the batch's
   * last message; an earlier offset leaves the rest to be read again (a halted feed partition);
   * null leaves the stored offset as it is.
   */
  readonly nextOffset?: number | null;
  /**
   * Holds the partition: nothing of the batch counts as consumed in memory and the partition is not
   * fetched again until `resumePartition`, which starts it from its stored offset.
   */
  readonly hold?: boolean;
}

export interface ExactlyOnceStep<T extends Positioned, R> {
  /**
   * Advisory lock (advisory-locks.ts) taken first in the transaction, when the apply steps of all
   * partitions and instances must run one at a time (they share state beyond the partition).
   */
  readonly applyLock?: number;
  /** The service's part: applies the unapplied messages with `tx`; must not commit or roll back. */
  readonly apply: (tx: PoolClient, batch: UnappliedBatch<T>) => Promise<Applied<R>>;
}

export interface StepOutcome<R> {
  readonly result: R;
  /** The next offset now stored, or null when it was left as it was. */
  readonly nextOffset: string | null;
  readonly hold: boolean;
}

/**
 * One batch of one partition, exactly once: BEGIN, the apply lock, the stored offset row-locked (a
 * second instance that still believes it owns the partition waits instead of applying twice), the
 * service's apply, the next offset stored, COMMIT; any error rolls it all back.
 */
export async function applyExactlyOnce<T extends Positioned, R>(
  pool: Pool,
  groupId: string,
  batch: PartitionBatch<T>,
  step: ExactlyOnceStep<T, R>,
): Promise<StepOutcome<R>> {
  const { topic, partition } = batch;
  return inTransaction(pool, async (tx) => {
    if (step.applyLock !== undefined) await tx.query("SELECT pg_advisory_xact_lock($1)", [step.applyLock]);
    const storedOffset = await lockStoredOffset(tx, groupId, topic, partition);
    const unapplied = batch.messages.filter((m) => Number(m.offset) >= storedOffset);
    const redelivered = batch.messages.length - unapplied.length;
    const applied = await step.apply(tx, { topic, partition, messages: unapplied, redelivered, storedOffset });
    // Messages come in offset order: the batch ends at its last one (or stays where it was stored).
    const last = batch.messages.at(-1);
    const next = applied.nextOffset === undefined ? Math.max(storedOffset, last ? Number(last.offset) + 1 : 0) : applied.nextOffset;
    if (next !== null) await storeNextOffset(tx, groupId, topic, partition, next);
    return { result: applied.result, nextOffset: next === null ? null : String(next), hold: applied.hold ?? false };
  });
}

/**
 * Inside the step's transaction: the stored next offset of a partition, row-locked until COMMIT.
 * The row exists after a partition's first batch, so that is one statement; the first batch
 * creates it (at 0) and then locks it.
 */
async function lockStoredOffset(client: PoolClient, group: string, topic: string, partition: number): Promise<number> {
  const lock = () =>
    client.query<{ next_offset: number }>(
      "SELECT next_offset FROM consumer_offsets WHERE consumer_group = $1 AND topic = $2 AND partition = $3 FOR UPDATE",
      [group, topic, partition],
    );
  let { rows } = await lock();
  if (!rows[0]) {
    await client.query(
      "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset) VALUES ($1, $2, $3, 0) ON CONFLICT DO NOTHING",
      [group, topic, partition],
    );
    ({ rows } = await lock());
  }
  return Number((rows[0] as { next_offset: number }).next_offset);
}

/** Inside the same transaction: where the next batch starts. */
async function storeNextOffset(client: PoolClient, group: string, topic: string, partition: number, next: number): Promise<void> {
  await client.query("UPDATE consumer_offsets SET next_offset = $4 WHERE consumer_group = $1 AND topic = $2 AND partition = $3", [
    group,
    topic,
    partition,
    next,
  ]);
}

/** The stored next offset of each partition of a topic, outside any transaction. */
export async function storedOffsets(pool: Pool, group: string, topic: string): Promise<Map<number, number>> {
  const { rows } = await pool.query<{ partition: number; next_offset: number }>(
    "SELECT partition, next_offset FROM consumer_offsets WHERE consumer_group = $1 AND topic = $2",
    [group, topic],
  );
  return new Map(rows.map((r) => [r.partition, r.next_offset]));
}
