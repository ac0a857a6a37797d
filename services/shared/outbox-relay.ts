/**
 * Transactional outbox relay: publishes rows a service wrote in its state-changing transaction,
 * in id order, then deletes them. Only one relay per database runs at a time (advisory lock),
 * so per-key order is kept. A crash between send and delete re-sends rows; consumers are
 * idempotent on key + revision/seq, which makes the effect exactly once.
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
  /** The table has a message_partition column (explicit partitions, e.g. feed chains). */
  readonly partitioned?: boolean;
  readonly idleMs?: number;
}

interface OutboxRow {
  id: number;
  topic: string;
  message_key: string | null;
  message_value: Buffer;
  message_partition?: number | null;
}

export class OutboxRelay {
  private running = false;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private relayed = 0;

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
    this.wake?.();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.notify();
    await this.loop;
  }

  private async sleep(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
    this.wake = null;
  }

  private async run(): Promise<void> {
    const idle = this.o.idleMs ?? 200;
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
        while (this.running) {
          const sent = await this.relayOnce(client);
          if (sent === 0) await this.sleep(idle);
        }
        await client.query("SELECT pg_advisory_unlock($1)", [this.o.lockId]);
      } catch (err) {
        this.o.logger.error({ err }, "outbox relay failed; retrying");
        await this.sleep(1000);
      } finally {
        client?.release(true);
      }
    }
  }

  /** Relays one chunk; returns how many rows were sent. */
  async relayOnce(client: PoolClient): Promise<number> {
    const table = this.o.table ?? "outbox";
    const { rows } = await client.query<OutboxRow>(
      `SELECT id, topic, message_key, message_value${this.o.partitioned ? ", message_partition" : ""} FROM ${table} ORDER BY id LIMIT $1`,
      [this.o.batchSize ?? 1000],
    );
    if (rows.length === 0) return 0;
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
    await client.query(`DELETE FROM ${table} WHERE id <= $1`, [(rows[rows.length - 1] as OutboxRow).id]);
    this.relayed += rows.length;
    return rows.length;
  }
}
