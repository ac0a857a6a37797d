/**
 * Turns planned feed changes into signed, chained FeedRecords inside the caller's transaction:
 * updates feed_entries, extends each partition's chain (feed_partitions), and queues the records
 * for Kafka (feed_outbox) and S3 deltas (feed_log) according to the partner's delivery.
 */
import { createHmac } from "node:crypto";
import type { KeyObject } from "node:crypto";
import type { AvroCodec } from "../shared/codec.ts";
import { GENESIS_DIGEST, feedPartitionOf, feedRecordDigest } from "../shared/feed-chain.ts";
import type { PoolClient } from "../shared/postgres.ts";
import type { FeedRecord } from "../shared/records.ts";
import { signRecord } from "../shared/signing.ts";
import type { TopicNames } from "../shared/topics.ts";
import type { FeedChange, FeedEntry, PartnerPolicy } from "./policy.ts";

export interface HubSigner {
  readonly keyId: string;
  readonly privateKey: KeyObject;
  /** Secret for per-partner record pseudonyms (recordRef). */
  readonly pseudonymSecret: string;
}

export function recordRef(secret: string, partnerId: string, recordId: string): string {
  return createHmac("sha256", secret).update(`${partnerId}\n${recordId}`).digest("hex").slice(0, 32);
}

interface EntryRow {
  partner_id: string;
  alg: FeedEntry["alg"];
  value: string;
  record_id: string;
  revision: number;
  category: string;
  content_type: string;
  extra: Record<string, string>;
}

function toEntry(r: EntryRow): FeedEntry {
  return { alg: r.alg, value: r.value, recordId: r.record_id, revision: r.revision, category: r.category, contentType: r.content_type, extra: r.extra };
}

interface ChainHead {
  seq: number;
  digest: Buffer;
  dirty: boolean;
}

/** Collects one transaction's feed writes; call flush() before COMMIT. */
export class FeedWriter {
  private readonly heads = new Map<string, ChainHead>();
  private readonly outbox: { topic: string; key: string; value: Buffer; partition: number }[] = [];
  private readonly log: { partnerId: string; partition: number; seq: number; body: Buffer }[] = [];
  readonly issued: FeedRecord[] = [];

  constructor(
    private readonly client: PoolClient,
    private readonly codec: AvroCodec,
    private readonly topics: TopicNames,
    private readonly hub: HubSigner,
    private readonly now: number,
  ) {}

  /** Entries as loaded from the database, per partner|record. */
  private readonly loaded = new Map<string, FeedEntry[]>();
  /** This transaction's changes per partner|alg:value (null = removed); they win over `loaded`. */
  private readonly overlay = new Map<string, FeedEntry | null>();
  /** Overlay keys whose entry this batch gave to each partner|record, so a lookup need not scan the overlay. */
  private readonly overlayByRecord = new Map<string, Set<string>>();

  /** Loads what partners hold for these records in one query (optional: currentEntries loads lazily). */
  async prefetch(partnerIds: readonly string[], recordIds: readonly string[]): Promise<void> {
    const wanted = recordIds.filter((r) => partnerIds.some((p) => !this.loaded.has(`${p}|${r}`)));
    if (!wanted.length || !partnerIds.length) return;
    const { rows } = await this.client.query<EntryRow>(
      "SELECT partner_id, alg, value, record_id, revision, category, content_type, extra FROM feed_entries WHERE partner_id = ANY($1::text[]) AND record_id = ANY($2::uuid[])",
      [partnerIds, wanted],
    );
    for (const p of partnerIds) for (const r of wanted) if (!this.loaded.has(`${p}|${r}`)) this.loaded.set(`${p}|${r}`, []);
    for (const row of rows) this.loaded.get(`${row.partner_id}|${row.record_id}`)?.push(toEntry(row));
  }

  async currentEntries(partnerId: string, recordId: string): Promise<FeedEntry[]> {
    const k = `${partnerId}|${recordId}`;
    if (!this.loaded.has(k)) {
      const { rows } = await this.client.query<EntryRow>(
        "SELECT partner_id, alg, value, record_id, revision, category, content_type, extra FROM feed_entries WHERE partner_id = $1 AND record_id = $2",
        [partnerId, recordId],
      );
      this.loaded.set(k, rows.map(toEntry));
    }
    const out = new Map<string, FeedEntry>();
    for (const e of this.loaded.get(k) ?? []) {
      const key = `${partnerId}|${e.alg}:${e.value}`;
      if (!this.overlay.has(key)) out.set(key, e);
    }
    // Hashes this batch gave to, or took from, the record (merges move hashes between records).
    for (const key of this.overlayByRecord.get(k) ?? []) {
      const e = this.overlay.get(key);
      if (e && e.recordId === recordId) out.set(key, e);
    }
    return [...out.values()];
  }

  private async head(partnerId: string, partition: number): Promise<ChainHead> {
    const k = `${partnerId}/${partition}`;
    let h = this.heads.get(k);
    if (!h) {
      const { rows } = await this.client.query<{ last_seq: number; last_digest: Buffer }>(
        "SELECT last_seq, last_digest FROM feed_partitions WHERE partner_id = $1 AND partition = $2 FOR UPDATE",
        [partnerId, partition],
      );
      h = rows[0] ? { seq: rows[0].last_seq, digest: rows[0].last_digest, dirty: false } : { seq: 0, digest: GENESIS_DIGEST, dirty: false };
      this.heads.set(k, h);
    }
    return h;
  }

  async apply(policy: PartnerPolicy, change: FeedChange): Promise<void> {
    const e = change.entry;
    const key = `${policy.partnerId}|${e.alg}:${e.value}`;
    this.overlay.set(key, change.op === "UPSERT" ? e : null);
    if (change.op === "UPSERT") {
      const byRecord = `${policy.partnerId}|${e.recordId}`;
      const keys = this.overlayByRecord.get(byRecord) ?? new Set<string>();
      keys.add(key);
      this.overlayByRecord.set(byRecord, keys);
    }
    const partition = feedPartitionOf(e.alg, e.value, policy.feedPartitions);
    const head = await this.head(policy.partnerId, partition);
    const writer = this.codec.schema("FeedRecord").type;
    const record = signRecord(
      "FeedRecord",
      writer,
      {
        partnerId: policy.partnerId,
        partition,
        seq: head.seq + 1,
        prevDigest: head.digest,
        op: change.op,
        alg: e.alg,
        value: e.value,
        category: change.op === "UPSERT" ? e.category : null,
        contentType: change.op === "UPSERT" ? (e.contentType as FeedRecord["contentType"]) : null,
        revision: change.op === "UPSERT" ? e.revision : change.revision,
        recordRef: recordRef(this.hub.pseudonymSecret, policy.partnerId, e.recordId),
        extra: change.op === "UPSERT" ? e.extra : {},
        issuedAt: this.now,
        keyId: this.hub.keyId,
      },
      this.hub.privateKey,
    );
    head.seq += 1;
    head.digest = feedRecordDigest(writer, record);
    head.dirty = true;
    const bytes = this.codec.encode("FeedRecord", record);
    this.issued.push(record);
    if (policy.delivery !== "s3") {
      this.outbox.push({ topic: this.topics.feed(policy.partnerId), key: `${e.alg}:${e.value}`, value: bytes, partition });
    }
    if (policy.delivery !== "kafka") this.log.push({ partnerId: policy.partnerId, partition, seq: record.seq, body: bytes });
  }

  async flush(): Promise<void> {
    const upserts: { partnerId: string; e: FeedEntry }[] = [];
    const removes: { partnerId: string; alg: string; value: string }[] = [];
    for (const [key, e] of this.overlay) {
      const bar = key.indexOf("|");
      const partnerId = key.slice(0, bar);
      const hash = key.slice(bar + 1);
      const colon = hash.indexOf(":");
      if (e) upserts.push({ partnerId, e });
      else removes.push({ partnerId, alg: hash.slice(0, colon), value: hash.slice(colon + 1) });
    }
    if (upserts.length) {
      await this.client.query(
        `INSERT INTO feed_entries (partner_id, alg, value, record_id, revision, category, content_type, extra)
         SELECT p, a, v, r, rev, c, ct, x::jsonb
           FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[], $5::bigint[], $6::text[], $7::text[], $8::text[]) AS t(p, a, v, r, rev, c, ct, x)
         ON CONFLICT (partner_id, alg, value) DO UPDATE SET record_id = EXCLUDED.record_id, revision = EXCLUDED.revision,
           category = EXCLUDED.category, content_type = EXCLUDED.content_type, extra = EXCLUDED.extra`,
        [
          upserts.map((u) => u.partnerId),
          upserts.map((u) => u.e.alg),
          upserts.map((u) => u.e.value),
          upserts.map((u) => u.e.recordId),
          upserts.map((u) => u.e.revision),
          upserts.map((u) => u.e.category),
          upserts.map((u) => u.e.contentType),
          upserts.map((u) => JSON.stringify(u.e.extra)),
        ],
      );
    }
    if (removes.length) {
      await this.client.query(
        `DELETE FROM feed_entries f USING unnest($1::text[], $2::text[], $3::text[]) AS t(p, a, v)
          WHERE f.partner_id = t.p AND f.alg = t.a AND f.value = t.v`,
        [removes.map((r) => r.partnerId), removes.map((r) => r.alg), removes.map((r) => r.value)],
      );
    }
    const dirty = [...this.heads].filter(([, h]) => h.dirty);
    if (dirty.length) {
      await this.client.query(
        `INSERT INTO feed_partitions (partner_id, partition, last_seq, last_digest)
         SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bytea[])
         ON CONFLICT (partner_id, partition) DO UPDATE SET last_seq = EXCLUDED.last_seq, last_digest = EXCLUDED.last_digest`,
        [dirty.map(([k]) => k.split("/")[0]), dirty.map(([k]) => Number(k.split("/")[1])), dirty.map(([, h]) => h.seq), dirty.map(([, h]) => h.digest)],
      );
    }
    if (this.outbox.length) {
      await this.client.query(
        `INSERT INTO feed_outbox (topic, message_key, message_value, message_partition)
         SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::int[])`,
        [this.outbox.map((m) => m.topic), this.outbox.map((m) => m.key), this.outbox.map((m) => m.value), this.outbox.map((m) => m.partition)],
      );
    }
    if (this.log.length) {
      await this.client.query(
        `INSERT INTO feed_log (partner_id, partition, seq, body) SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bytea[])`,
        [this.log.map((l) => l.partnerId), this.log.map((l) => l.partition), this.log.map((l) => l.seq), this.log.map((l) => l.body)],
      );
    }
  }
}
