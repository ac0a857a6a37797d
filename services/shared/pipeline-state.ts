/**
 * Where the pipeline stands, read from PostgreSQL and Kafka: each stage's lag (the offsets stored
 * with its state in consumer_offsets, against the topic's end), an outbox's backlog, the
 * dead-letter topic's size, and how long each kind of signing key keeps its owners covered. The
 * services' /metrics read these at scrape time; an operator's console can read the same. The
 * arithmetic is in pure functions beside the reads, unit-tested on their own.
 */
import type { Admin } from "kafkajs";
import type { Queryable } from "./postgres.ts";

export interface TopicPartitionEnds {
  readonly partition: number;
  /** Log start and end offsets, as kafkajs gives them (strings). */
  readonly low: string;
  readonly high: string;
}

export interface StageLag {
  readonly partition: number;
  /** Next offset the stage applies; the log start when it stored none (or one retention passed). */
  readonly next: number;
  readonly end: number;
  /** Messages published that the stage has not applied. */
  readonly lag: number;
}

/** Each partition's lag from its stored next offset; a partition with none is read from its start. */
export function stageLag(ends: readonly TopicPartitionEnds[], stored: ReadonlyMap<number, number>): StageLag[] {
  return [...ends]
    .sort((a, b) => a.partition - b.partition)
    .map((e) => {
      const end = Number(e.high);
      const next = Math.max(stored.get(e.partition) ?? 0, Number(e.low));
      return { partition: e.partition, next, end, lag: Math.max(0, end - next) };
    });
}

/** A consumer group's lag on a topic, from the offsets it stored in `db` (exactly-once-step.ts). */
export async function readStageLag(db: Queryable, admin: Admin, group: string, topic: string): Promise<StageLag[]> {
  const [ends, { rows }] = await Promise.all([
    admin.fetchTopicOffsets(topic),
    db.query<{ partition: number; next_offset: string }>(
      "SELECT partition, next_offset::text FROM consumer_offsets WHERE consumer_group = $1 AND topic = $2",
      [group, topic],
    ),
  ]);
  return stageLag(ends, new Map(rows.map((r) => [r.partition, Number(r.next_offset)])));
}

/** The outbox tables the relays drain (outbox-relay.ts). */
export type OutboxTable = "outbox" | "feed_outbox";

export interface OutboxBacklog {
  readonly messages: number;
  /** Age of the oldest row waiting; 0 when none waits. */
  readonly oldestAgeSeconds: number;
}

/**
 * Rows waiting in an outbox, and how long the oldest has waited. Rows sent but not yet deleted
 * (the relay deletes about once a second) count as waiting.
 */
export async function readOutboxBacklog(db: Queryable, table: OutboxTable): Promise<OutboxBacklog> {
  const { rows } = await db.query<{ n: string; age: number | null }>(
    `SELECT count(*)::text AS n, extract(epoch FROM now() - min(created_at))::float8 AS age FROM ${table}`,
  );
  return { messages: Number(rows[0]?.n ?? 0), oldestAgeSeconds: Math.max(0, rows[0]?.age ?? 0) };
}

/** Messages held on a topic (the dead-letter topic): end minus start, over its partitions. */
export async function readTopicDepth(admin: Admin, topic: string): Promise<number> {
  const ends = await admin.fetchTopicOffsets(topic);
  return ends.reduce((n, e) => n + Math.max(0, Number(e.high) - Number(e.low)), 0);
}

export interface KeySpan {
  readonly ownerId: string;
  readonly validFrom: Date | null;
  /** null: no end. */
  readonly validUntil: Date | null;
}

export interface KeyCoverage {
  /**
   * Seconds until the first owner of this kind is left without a valid key: per owner, the end of
   * the unbroken run of valid keys from now (a successor that starts before its predecessor ends
   * carries it on); the earliest of those. +Inf when no owner's run ends.
   */
  readonly expirySeconds: number;
  /** Owners with no key valid now (all expired, revoked, or not yet valid). */
  readonly ownersWithoutValidKey: number;
  readonly owners: number;
}

/** Coverage of one kind of key from its unrevoked keys. */
export function keyCoverage(keys: readonly KeySpan[], now: Date): KeyCoverage {
  const byOwner = new Map<string, KeySpan[]>();
  for (const k of keys) byOwner.set(k.ownerId, [...(byOwner.get(k.ownerId) ?? []), k]);
  let expiry = Number.POSITIVE_INFINITY;
  let uncovered = 0;
  for (const spans of byOwner.values()) {
    const end = coveredUntil(spans, now.getTime());
    if (end === null) uncovered++;
    else expiry = Math.min(expiry, (end - now.getTime()) / 1000);
  }
  return { expirySeconds: expiry, ownersWithoutValidKey: uncovered, owners: byOwner.size };
}

/** End (ms) of the run of valid keys that covers `now`; null when no key is valid now, Infinity when the run never ends. */
function coveredUntil(spans: readonly KeySpan[], now: number): number | null {
  let end: number | null = null;
  let reach = now;
  for (;;) {
    // Any key valid at `reach` extends the run to its own end.
    let next: number | null = null;
    for (const k of spans) {
      const from = k.validFrom?.getTime() ?? Number.NEGATIVE_INFINITY;
      const until = k.validUntil?.getTime() ?? Number.POSITIVE_INFINITY;
      if (from <= reach && until > reach && until > (next ?? reach)) next = until;
    }
    if (next === null) return end;
    end = next;
    if (next === Number.POSITIVE_INFINITY) return end;
    reach = next;
  }
}

export type RegistryKeyKind = "agency" | "hub";

/** Coverage of one kind of key in the hub's registry (signing_keys), revoked keys left out. */
export async function readKeyCoverage(db: Queryable, kind: RegistryKeyKind, now = new Date()): Promise<KeyCoverage> {
  const { rows } = await db.query<{ owner_id: string; valid_from: Date; valid_until: Date | null }>(
    "SELECT owner_id, valid_from, valid_until FROM signing_keys WHERE owner_kind = $1 AND revoked_at IS NULL",
    [kind],
  );
  // Owners whose every key was revoked still count, as owners without a valid key.
  const { rows: owners } = await db.query<{ owner_id: string }>("SELECT DISTINCT owner_id FROM signing_keys WHERE owner_kind = $1", [kind]);
  const spans: KeySpan[] = rows.map((r) => ({ ownerId: r.owner_id, validFrom: r.valid_from, validUntil: r.valid_until }));
  const withKeys = new Set(rows.map((r) => r.owner_id));
  const coverage = keyCoverage(spans, now);
  const revokedOnly = owners.filter((o) => !withKeys.has(o.owner_id)).length;
  return {
    ...coverage,
    ownersWithoutValidKey: coverage.ownersWithoutValidKey + revokedOnly,
    owners: coverage.owners + revokedOnly,
  };
}
