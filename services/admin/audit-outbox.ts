/**
 * The admin CLI's audit outbox: an event is queued in the hub database inside the transaction of
 * the change it records, then sent to audit.v1 and deleted. Sending locks the rows it sends (SKIP
 * LOCKED), so two operators' commands flushing at once do not both send the same event.
 */
import { fileURLToPath } from "node:url";
import type { Kafka } from "kafkajs";
import type { Pool, Queryable } from "../shared/postgres.ts";
import { inTransaction } from "../shared/postgres.ts";
import { sendAcknowledged } from "./audit.ts";

/**
 * The admin tool's own tables (the audit outbox). Their versions are recorded in schema_migrations
 * under the namespace "shared", where existing hub databases already list them, so they are never
 * applied twice; keep that namespace and keep the version names unique within it.
 */
export const ADMIN_MIGRATIONS = { namespace: "shared", dir: fileURLToPath(new URL("./migrations/", import.meta.url)) } as const;

export interface QueuedAuditMessage {
  readonly topic: string;
  readonly key: string;
  readonly value: Buffer;
  readonly action: string;
}

export async function queueAuditMessage(db: Queryable, m: QueuedAuditMessage): Promise<void> {
  await db.query("INSERT INTO admin_audit_outbox (topic, message_key, message_value, action) VALUES ($1, $2, $3, $4)", [
    m.topic,
    m.key,
    m.value,
    m.action,
  ]);
}

export async function pendingAuditEvents(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM admin_audit_outbox");
  return rows[0]?.n ?? 0;
}

/**
 * Sends every queued event in order (acks from all in-sync replicas) and deletes them, in one
 * transaction: on any failure nothing is deleted and the error is thrown. Returns how many were sent.
 */
export async function flushAuditOutbox(pool: Pool, kafka: Kafka, timeoutMs = 30_000): Promise<number> {
  return inTransaction(pool, async (client) => {
    const { rows } = await client.query<{ id: number; topic: string; message_key: string; message_value: Buffer }>(
      "SELECT id, topic, message_key, message_value FROM admin_audit_outbox ORDER BY id FOR UPDATE SKIP LOCKED",
    );
    if (rows.length === 0) return 0;
    await sendAcknowledged(
      kafka,
      rows.map((r) => ({ topic: r.topic, key: r.message_key, value: r.message_value })),
      timeoutMs,
    );
    await client.query("DELETE FROM admin_audit_outbox WHERE id = ANY($1::bigint[])", [rows.map((r) => r.id)]);
    return rows.length;
  });
}
