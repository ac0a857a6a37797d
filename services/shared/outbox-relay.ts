/**
 * Transactional outbox relay: publishes rows a service wrote in its state-changing transaction,
 * in id order, then deletes them. Only one relay per database runs at a time (advisory lock),
 * so per-key order is kept. A crash between send and delete re-sends rows; consumers are
 * idempotent on key + revision/seq, which makes the effect exactly once.
 *
 * Rows sent are remembered by id and deleted at most about once a second, or as soon as the relay
 * has nothing to send: each DELETE is a transaction of its own (a WAL flush), and at a steady load
 * one per pass cost more than the pass. Rows sent but not yet deleted are what a crash re-sends.
 * Reading on from the last id sent (and deleting up to it) relies on the writers of a table
 * committing in id order: each holds its service's apply lock until COMMIT.
 */
import type { RecordProducer } from "./kafka.ts";
import type { Logger } from "./logging.ts";
import type { Pool, PoolClient } from "./postgres.ts";

export interface OutboxRelayOptions {
  readonly pool: Pool;
  readonly producer: RecordProducer;
  readonly logger: Logger;
  /** Advisory lock id: one per outbox table. */
  readonly lockId: number;
  readonly table?: string;
  readonly batchSize?: number;
  /**
   * Most bytes of message values in one send. kafkajs puts a partition's messages of a send in one
   * record batch, which the broker refuses above its max.message.bytes (1 MiB by default); a row is
   * never split, so one row may be up to that limit.
   */
  readonly maxSendBytes?: number;
  /** The table has a message_partition column (explicit partitions, e.g. feed chains). */
  readonly partitioned?: boolean;
  /** Poll interval when nothing was notified (a commit by another instance is seen this late). */
  readonly idleMs?: number;
  /** Least time between two deletes of sent rows while rows keep coming. */
  readonly deleteIntervalMs?: number;
  /** After each send, with the rows it carried (a metrics counter). */
  readonly onRelayed?: (rows: number) => void;
}

/** An outbox row, as the relay reads it (or as its writer hands it over: `handOff`). */
export interface OutboxRow {
  id: number;
  topic: string;
  message_key: string | null;
  message_value: Buffer;
  message_partition?: number | null;
}

/** Rows a writer just committed, as it queued them, with where the table stood before them. */
export interface CommittedOutbox {
  /** The highest outbox id committed before these rows (0 when none was left in the table). */
  readonly before: number;
  /** In id order. */
  readonly rows: readonly OutboxRow[];
}

/**
 * A round's write answers with the ids its outbox INSERT gave (in the messages' order) and the
 * highest id committed before them: the rows as the relay would read them back.
 */
export function committedOutbox(
  what: string,
  answer: { outbox_ids: number[]; outbox_before: number } | undefined,
  messages: readonly { topic: string; key: string | null; value: Buffer; partition?: number | null }[],
): CommittedOutbox {
  const ids = answer?.outbox_ids ?? [];
  if (ids.length !== messages.length) throw new Error(`${what}: ${ids.length} outbox ids for ${messages.length} messages`);
  return {
    before: answer?.outbox_before ?? 0,
    rows: messages.map((m, i) => ({
      id: ids[i] as number,
      topic: m.topic,
      message_key: m.key,
      message_value: m.value,
      ...(m.partition === undefined ? {} : { message_partition: m.partition }),
    })),
  };
}

export class OutboxRelay {
  private running = false;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private relayed = 0;
  /** Highest id sent since the lock was taken, and the highest deleted. */
  private sentUpTo = 0;
  private deletedUpTo = 0;
  private lastDelete = 0;
  /** The last read held more than one send's bytes: rows are waiting. */
  private cutShort = false;
  /**
   * A notify came while the relay was reading or sending, not sleeping: what was committed may have
   * missed that read, so the next sleep returns at once rather than waiting for the poll.
   */
  private notified = false;
  /** Rows handed over since the last read (handOff), while this relay holds the table's lock. */
  private handed: CommittedOutbox | null = null;
  private holding = false;

  private readonly o: OutboxRelayOptions;

  constructor(o: OutboxRelayOptions) {
    this.o = o;
  }

  get relayedCount(): number {
    return this.relayed;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** Something was just committed to the outbox: relay it now rather than at the next poll. */
  notify(): void {
    if (this.wake) this.wake();
    else this.notified = true;
  }

  /**
   * The rows a writer of this process just committed, with the highest id committed before them.
   * When that is no further than what was sent, they are exactly the next rows and go out without
   * being read back; otherwise (another writer's rows in between, a lock just taken) the relay reads
   * the table as it does without them. Wakes the relay.
   */
  handOff(committed: CommittedOutbox): void {
    const held = this.handed;
    const last = held?.rows.at(-1);
    let next: CommittedOutbox | null = held;
    if (!this.holding) next = null;
    // Committed right after the rows not yet taken: both go out together.
    else if (held && last && committed.before === last.id) next = { ...held, rows: [...held.rows, ...committed.rows] };
    else if (committed.rows.length > 0) next = committed;
    // At most one read's worth, or the table is read instead: a relay held up by Kafka would
    // otherwise keep every round's rows in memory.
    this.handed = next && next.rows.length <= (this.o.batchSize ?? 1000) ? next : null;
    this.notify();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.notify();
    await this.loop;
  }

  /** Resolves true when woken by notify/stop, false when the time ran out. */
  private async sleep(ms: number): Promise<boolean> {
    if (this.notified) {
      this.notified = false;
      return true;
    }
    const woken = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), ms);
      this.wake = () => {
        clearTimeout(t);
        resolve(true);
      };
    });
    this.wake = null;
    return woken;
  }

  private async run(): Promise<void> {
    const idle = this.o.idleMs ?? 500;
    const chunk = this.o.batchSize ?? 1000;
    while (this.running) {
      let client: PoolClient | null = null;
      try {
        client = await this.o.pool.connect();
        const { rows } = await client.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1) AS ok", [this.o.lockId]);
        if (!rows[0]?.ok) {
          client.release();
          client = null;
          await this.sleep(idle * 5); // another instance relays; stand by
          continue;
        }
        // What an earlier holder sent but did not delete is sent again (consumers are idempotent).
        this.sentUpTo = 0;
        this.deletedUpTo = 0;
        this.handed = null;
        this.holding = true;
        while (this.running) {
          const sent = await this.relayOnce(client);
          if (sent === chunk || this.cutShort) {
            await this.deleteSent(client, false);
            continue; // more may be waiting
          }
          // Drained as of that read: delete what was sent when it is due, or on a quiet moment.
          await this.deleteSent(client, false);
          if (!(await this.sleep(idle))) await this.deleteSent(client, true);
        }
        this.holding = false;
        await this.deleteSent(client, true);
        await client.query("SELECT pg_advisory_unlock($1)", [this.o.lockId]);
      } catch (err) {
        this.holding = false;
        this.o.logger.error({ err }, "outbox relay failed; retrying");
        await this.sleep(1000);
      } finally {
        client?.release(true);
      }
    }
  }

  /** Deletes the rows sent so far: when due (`deleteIntervalMs` since the last), or now. */
  private async deleteSent(client: PoolClient, now: boolean): Promise<void> {
    if (this.sentUpTo <= this.deletedUpTo) return;
    if (!now && Date.now() - this.lastDelete < (this.o.deleteIntervalMs ?? 1000)) return;
    await client.query(`DELETE FROM ${this.o.table ?? "outbox"} WHERE id <= $1`, [this.sentUpTo]);
    this.deletedUpTo = this.sentUpTo;
    this.lastDelete = Date.now();
  }

  /** The rows handed over, when they are exactly the next ones after what was sent. */
  private takeHanded(): readonly OutboxRow[] | null {
    const h = this.handed;
    this.handed = null;
    const first = h?.rows[0];
    if (!h || !first || h.before > this.sentUpTo || first.id <= this.sentUpTo) return null;
    return h.rows;
  }

  /** Relays the next chunk after what was sent; returns how many rows were sent. */
  async relayOnce(client: PoolClient): Promise<number> {
    const table = this.o.table ?? "outbox";
    // This read sees whatever was committed before it; a notify from now on asks for another.
    this.notified = false;
    const read =
      this.takeHanded() ??
      (
        await client.query<OutboxRow>(
          `SELECT id, topic, message_key, message_value${this.o.partitioned ? ", message_partition" : ""} FROM ${table}
            WHERE id > $2 ORDER BY id LIMIT $1`,
          [this.o.batchSize ?? 1000, this.sentUpTo],
        )
      ).rows;
    if (read.length === 0) return 0;
    const limit = this.o.maxSendBytes ?? 512 * 1024;
    let bytes = 0;
    let take = 0;
    for (const r of read) {
      if (take > 0 && bytes + r.message_value.length > limit) break;
      bytes += r.message_value.length;
      take++;
    }
    this.cutShort = take < read.length;
    const rows = read.slice(0, take);
    const byTopic = new Map<string, { key: string | null; value: Buffer; partition?: number }[]>();
    for (const r of rows) {
      const list = byTopic.get(r.topic) ?? [];
      list.push({
        key: r.message_key,
        value: r.message_value,
        ...(r.message_partition !== undefined && r.message_partition !== null ? { partition: r.message_partition } : {}),
      });
      byTopic.set(r.topic, list);
    }
    await this.o.producer.sendBatch({
      acks: -1,
      topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
    });
    this.sentUpTo = (rows[rows.length - 1] as OutboxRow).id;
    this.relayed += rows.length;
    this.o.onRelayed?.(rows.length);
    return rows.length;
  }
}
