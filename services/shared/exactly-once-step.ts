/**
 * The exactly-once step, written once: a round of batches (one per partition of one topic) is
 * applied in one PostgreSQL transaction that takes the service's apply lock (if it has one),
 * row-locks the partitions' stored next offsets (consumer_offsets), hands the service's apply
 * function only the messages at or past those offsets, and stores the next offsets before COMMIT.
 * The stored offsets, not Kafka's, decide what was applied: a redelivered message is left out, and
 * a crash or an error anywhere leaves all of the round or none of it. One transaction per round
 * rather than per partition keeps the fixed cost of a transaction (its lock, offsets and commit)
 * from being paid once for every partition that has a few messages. exactly-once-consumer.ts feeds
 * it from Kafka.
 */
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

/** What the apply function gets of each partition, inside the transaction. */
export interface UnappliedBatch<T extends Positioned> extends PartitionBatch<T> {
  /** The messages at or past the stored offset, in the order fetched: none of them is applied yet. */
  readonly messages: readonly T[];
  /** Messages of the batch below the stored offset (already applied: a redelivery), left out. */
  readonly redelivered: number;
  /** The partition's stored next offset, row-locked until COMMIT. */
  readonly storedOffset: number;
}

/** Where a partition goes on after the round, when not simply after its batch's last message. */
export interface PartitionPosition {
  /**
   * Where the partition's next batch starts, stored in the same transaction: an earlier offset
   * leaves the rest to be read again (a halted feed partition, with `hold`; or a feed tail not yet
   * authenticated, which the consumer fetches again from there); null leaves the stored offset as
   * it is. Left out: just after the batch's last message.
   */
  readonly nextOffset?: number | null;
  /**
   * Holds the partition: nothing of its batch counts as consumed in memory and it is not fetched
   * again until `resumePartition`, which starts it from its stored offset.
   */
  readonly hold?: boolean;
}

/** What the apply function returns. */
export interface Applied<R> {
  readonly result: R;
  /** Partitions that go on other than just after their batch (by partition number). */
  readonly positions?: ReadonlyMap<number, PartitionPosition>;
}

export interface ExactlyOnceStep<T extends Positioned, R> {
  /**
   * Advisory lock (advisory-locks.ts) taken first in the transaction, when the apply steps of all
   * partitions and instances must run one at a time (they share state beyond the partition).
   */
  readonly applyLock?: number;
  /**
   * A SELECT without parameters that the service needs every round, run under the apply lock in
   * the round's first round trip rather than as a statement of its own; its rows reach `apply`.
   */
  readonly readAtBegin?: string;
  /**
   * A SELECT without parameters built from the round's batches (its values written as literals,
   * integers only: `intArrayLiteral`), run right after the offset lock in the round's first round
   * trip rather than as the apply's first statement: what the service locks and reads per
   * partition. Its rows reach `apply` as `locked`.
   */
  readonly readAfterLock?: (batches: readonly PartitionBatch<T>[]) => string;
  /**
   * The service's part: applies the unapplied messages of every partition in the round (ascending
   * partition order) with `tx`; must not commit or roll back. `begun`: the rows of `readAtBegin`;
   * `locked`: those of `readAfterLock` (undefined without one).
   */
  readonly apply: (
    tx: PoolClient,
    batches: readonly UnappliedBatch<T>[],
    begun: readonly Record<string, unknown>[],
    locked?: readonly Record<string, unknown>[],
  ) => Promise<Applied<R>>;
}

/** How one partition of a committed round was left. */
export interface PartitionOutcome {
  readonly partition: number;
  /** The next offset now stored, or null when it was left as it was. */
  readonly nextOffset: string | null;
  readonly hold: boolean;
}

export interface StepOutcome<R> {
  readonly result: R;
  readonly partitions: readonly PartitionOutcome[];
}

/**
 * One round, exactly once: BEGIN, the apply lock, the stored offsets row-locked in partition order
 * (a second instance that still believes it owns a partition waits instead of applying twice), the
 * service's apply, the next offsets stored, COMMIT; any error rolls it all back. `batches` must be
 * of one topic, one batch per partition.
 */
export async function applyExactlyOnce<T extends Positioned, R>(
  pool: Pool,
  groupId: string,
  batches: readonly PartitionBatch<T>[],
  step: ExactlyOnceStep<T, R>,
): Promise<StepOutcome<R>> {
  const topic = batches[0]?.topic;
  if (topic === undefined) throw new Error("applyExactlyOnce: a round needs at least one batch");
  const ordered = [...batches].sort((a, b) => a.partition - b.partition);
  ordered.forEach((b, i) => {
    if (b.topic !== topic) throw new Error(`applyExactlyOnce: one topic per round (${topic}, ${b.topic})`);
    if (i > 0 && ordered[i - 1]?.partition === b.partition) throw new Error(`applyExactlyOnce: partition ${b.partition} twice in a round`);
  });
  const partitions = ordered.map((b) => b.partition);
  const tx = await pool.connect();
  try {
    const afterLock = step.readAfterLock?.(ordered);
    const { stored, begun, locked } = await beginRound(tx, step.applyLock, step.readAtBegin, afterLock, groupId, topic, partitions);
    const unapplied = ordered.map((b): UnappliedBatch<T> => {
      const storedOffset = stored.get(b.partition) ?? 0;
      const messages = b.messages.filter((m) => Number(m.offset) >= storedOffset);
      return { topic, partition: b.partition, messages, redelivered: b.messages.length - messages.length, storedOffset };
    });
    const applied = await step.apply(tx, unapplied, begun, locked);
    const outcomes = unapplied.map((b, i): PartitionOutcome => {
      const position = applied.positions?.get(b.partition);
      // Messages come in offset order: the batch ends at its last one (or stays where it was stored).
      const last = ordered[i]?.messages.at(-1);
      const next = position?.nextOffset === undefined ? Math.max(b.storedOffset, last ? Number(last.offset) + 1 : 0) : position.nextOffset;
      return { partition: b.partition, nextOffset: next === null ? null : String(next), hold: position?.hold ?? false };
    });
    await commitRound(tx, groupId, topic, outcomes);
    return { result: applied.result, partitions: outcomes };
  } catch (err) {
    await tx.query("ROLLBACK").catch(() => undefined);
    throw err;
  } finally {
    tx.release();
  }
}

/*
 * A round's fixed statements go in as few round trips as the protocol allows: BEGIN, the apply
 * lock, the service's readAtBegin, the offset lock and the service's readAfterLock in one simple
 * query, and the offset update with COMMIT in another. A simple query takes no parameters, so its
 * values are written as literals: the group and topic through the driver's escaping, the rest are
 * checked integers.
 */

/**
 * BEGIN, the apply lock, the service's readAtBegin, then the stored next offset of each partition,
 * row-locked until COMMIT, then the service's readAfterLock. The rows exist after a partition's
 * first round; a round with a new partition creates its row (at 0), locks again and reads again
 * after the lock.
 */
async function beginRound(
  tx: PoolClient,
  applyLock: number | undefined,
  readAtBegin: string | undefined,
  readAfterLock: string | undefined,
  group: string,
  topic: string,
  partitions: readonly number[],
): Promise<{ stored: Map<number, number>; begun: readonly Record<string, unknown>[]; locked?: readonly Record<string, unknown>[] }> {
  const selectOffsets = `SELECT partition, next_offset FROM consumer_offsets
    WHERE consumer_group = ${tx.escapeLiteral(group)} AND topic = ${tx.escapeLiteral(topic)}
      AND partition = ANY(${intArrayLiteral(partitions)}::int[]) ORDER BY partition FOR UPDATE`;
  const begin = [
    "BEGIN",
    ...(applyLock === undefined ? [] : [`SELECT pg_advisory_xact_lock(${integer(applyLock)})`]),
    ...(readAtBegin === undefined ? [] : [readAtBegin]),
    selectOffsets,
    ...(readAfterLock === undefined ? [] : [readAfterLock]),
  ];
  const results = await tx.query(begin.join(";\n"));
  const offsetsAt = begin.length - (readAfterLock === undefined ? 1 : 2);
  let stored = offsetsOf(resultAt(results, offsetsAt));
  let locked = readAfterLock === undefined ? undefined : resultAt(results, offsetsAt + 1).rows;
  const begun = readAtBegin === undefined ? [] : resultAt(results, offsetsAt - 1).rows;
  if (stored.size < partitions.length) {
    await tx.query(
      `INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset)
       SELECT $1, $2, p, 0 FROM unnest($3::int[]) AS p ON CONFLICT DO NOTHING`,
      [group, topic, partitions.filter((p) => !stored.has(p))],
    );
    stored = offsetsOf(await tx.query(selectOffsets));
    if (readAfterLock !== undefined) locked = (await tx.query(readAfterLock)).rows;
  }
  return { stored, begun, ...(locked === undefined ? {} : { locked }) };
}

/** Where each partition's next batch starts (null: unchanged), stored, then COMMIT. */
async function commitRound(tx: PoolClient, group: string, topic: string, partitions: readonly PartitionOutcome[]): Promise<void> {
  const moved = partitions.filter((p): p is PartitionOutcome & { nextOffset: string } => p.nextOffset !== null);
  const update = `UPDATE consumer_offsets o SET next_offset = n.next_offset
      FROM unnest(${intArrayLiteral(moved.map((p) => p.partition))}::int[], ${intArrayLiteral(moved.map((p) => Number(p.nextOffset)))}::bigint[])
        AS n(partition, next_offset)
     WHERE o.consumer_group = ${tx.escapeLiteral(group)} AND o.topic = ${tx.escapeLiteral(topic)} AND o.partition = n.partition`;
  await tx.query(moved.length ? `${update};\nCOMMIT` : "COMMIT");
}

type Rows = { rows: Record<string, unknown>[] };

/** A simple query of several statements answers with one result each. */
function resultAt(result: Rows | Rows[], i: number): Rows {
  const at = Array.isArray(result) ? result[i] : undefined;
  if (!at) throw new Error(`exactly-once step: no result for statement ${i} of the round's first query`);
  return at;
}

function offsetsOf(result: Rows): Map<number, number> {
  return new Map(result.rows.map((r) => [Number(r.partition), Number(r.next_offset)]));
}

function integer(n: number): string {
  if (!Number.isSafeInteger(n)) throw new Error(`exactly-once step: ${n} is not an integer`);
  return String(n);
}

/** A PostgreSQL array literal of checked integers, for statements sent without parameters. */
export function intArrayLiteral(ns: readonly number[]): string {
  return `'{${ns.map(integer).join(",")}}'`;
}

/** The stored next offset of each partition of a topic, outside any transaction. */
export async function storedOffsets(pool: Pool, group: string, topic: string): Promise<Map<number, number>> {
  const { rows } = await pool.query<{ partition: number; next_offset: number }>(
    "SELECT partition, next_offset FROM consumer_offsets WHERE consumer_group = $1 AND topic = $2",
    [group, topic],
  );
  return new Map(rows.map((r) => [r.partition, r.next_offset]));
}
