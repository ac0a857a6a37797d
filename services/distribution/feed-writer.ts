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

  async currentEntries(partnerId: string, recordId: string): Promise<FeedEntry[]> {
    const { rows } = await this.client.query<{ alg: FeedEntry["alg"]; value: string; record_id: string; revision: number; category: string; content_type: string; extra: Record<string, string> }>(
      "SELECT alg, value, record_id, revision, category, content_type, extra FROM feed_entries WHERE partner_id = $1 AND record_id = $2",
      [partnerId, recordId],
    );
    return rows.map((r) => ({ alg: r.alg, value: r.value, recordId: r.record_id, revision: r.revision, category: r.category, contentType: r.content_type, extra: r.extra }));
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
    if (change.op === "UPSERT") {
      await this.client.query(
        `INSERT INTO feed_entries (partner_id, alg, value, record_id, revision, category, content_type, extra)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (partner_id, alg, value) DO UPDATE SET record_id = EXCLUDED.record_id, revision = EXCLUDED.revision,
           category = EXCLUDED.category, content_type = EXCLUDED.content_type, extra = EXCLUDED.extra`,
        [policy.partnerId, e.alg, e.value, e.recordId, e.revision, e.category, e.contentType, JSON.stringify(e.extra)],
      );
    } else {
      await this.client.query("DELETE FROM feed_entries WHERE partner_id = $1 AND alg = $2 AND value = $3", [policy.partnerId, e.alg, e.value]);
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
