/**
 * Turns planned feed changes into signed, chained FeedRecords inside the caller's transaction:
 * extends each partition's chain (feed_partitions) and queues the records for Kafka (feed_outbox)
 * and S3 deltas (feed_log) according to the partner's delivery. Also loads the planning state
 * (planner.ts's FeedLedger: record bodies, hash claims, feed entries) for a set of records and
 * writes back what planning changed (feed_entries, distributed_hashes) on flush.
 */
import { createHmac } from "node:crypto";
import type { KeyObject } from "node:crypto";
import type { AvroCodec } from "../shared/wire/codec.ts";
import { GENESIS_DIGEST, feedPartitionOf, feedRecordDigest } from "../shared/wire/feed-chain.ts";
import type { PoolClient } from "../shared/postgres.ts";
import type { CanonicalRecord, FeedRecord } from "../shared/wire/records.ts";
import { signRecord } from "../shared/wire/signing.ts";
import type { TopicNames } from "../shared/topics.ts";
import type { Disclosure } from "./audit.ts";
import { FeedLedger, hashKeyOf, splitHashKey } from "./planner.ts";
import type { HashKey } from "./planner.ts";
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
  /** Every record issued in this transaction, with the hub record it discloses (for audit.ts). */
  readonly issued: Disclosure[] = [];

  private readonly client: PoolClient;
  private readonly codec: AvroCodec;
  private readonly topics: TopicNames;
  private readonly hub: HubSigner;
  private readonly now: number;

  constructor(client: PoolClient, codec: AvroCodec, topics: TopicNames, hub: HubSigner, now: number) {
    this.client = client;
    this.codec = codec;
    this.topics = topics;
    this.hub = hub;
    this.now = now;
  }

  /** Planning state of this transaction: loaded by load(), changed by planner.ts, written by flush(). */
  readonly ledger = new FeedLedger();

  /**
   * Loads what planning these records' revisions needs for these partners, in a few queries: the
   * stored bodies and claims of the records, the entries they own, then every hash they touch
   * (listed, claimed or owned), with its claimants, their bodies and each partner's entry.
   * Anything already loaded is not read again.
   */
  async load(partnerIds: readonly string[], records: readonly CanonicalRecord[]): Promise<void> {
    const ledger = this.ledger;
    const planned = [...new Set(records.map((r) => r.recordId))];
    // Records merged into the planned ones: planning a survivor re-plans what they still hold.
    const survivorsToLoad = planned.filter((id) => !ledger.hasMergesInto(id));
    if (survivorsToLoad.length) {
      const { rows } = await this.client.query<{ merged_id: string; survivor_id: string }>(
        "SELECT merged_id, survivor_id FROM distributed_merges WHERE survivor_id = ANY($1::uuid[])",
        [survivorsToLoad],
      );
      for (const id of survivorsToLoad) ledger.addMergesInto(id, rows.filter((r) => r.survivor_id === id).map((r) => r.merged_id));
    }
    const ids = [...new Set([...planned, ...planned.flatMap((id) => ledger.mergedInto(id))])];
    await this.loadBodies(ids);
    const claimless = ids.filter((id) => !ledger.hasClaimsOf(id));
    if (claimless.length) {
      const { rows } = await this.client.query<{ record_id: string; alg: string; value: string }>(
        "SELECT record_id, alg, value FROM distributed_hashes WHERE record_id = ANY($1::uuid[])",
        [claimless],
      );
      const claims = new Map<string, HashKey[]>(claimless.map((id) => [id, []]));
      for (const r of rows) claims.get(r.record_id)?.push(hashKeyOf(r));
      for (const [id, hashes] of claims) ledger.addClaimsOf(id, hashes);
    }
    const ownerless = partnerIds.flatMap((p) => ids.filter((id) => !ledger.hasOwned(p, id)).map((id) => [p, id] as const));
    if (ownerless.length) {
      const { rows } = await this.client.query<EntryRow>(
        `SELECT f.partner_id, f.alg, f.value, f.record_id, f.revision, f.category, f.content_type, f.extra
           FROM feed_entries f JOIN unnest($1::text[], $2::uuid[]) AS t(p, r) ON f.partner_id = t.p AND f.record_id = t.r`,
        [ownerless.map(([p]) => p), ownerless.map(([, id]) => id)],
      );
      const owned = new Map<string, HashKey[]>(ownerless.map(([p, id]) => [`${p}|${id}`, []]));
      for (const row of rows) {
        ledger.addEntry(row.partner_id, hashKeyOf(row), toEntry(row));
        owned.get(`${row.partner_id}|${row.record_id}`)?.push(hashKeyOf(row));
      }
      for (const [k, hashes] of owned) {
        const bar = k.indexOf("|");
        ledger.addOwned(k.slice(0, bar), k.slice(bar + 1), hashes);
      }
    }
    const touched = new Set<HashKey>();
    for (const r of records) for (const h of r.hashes) touched.add(hashKeyOf(h));
    for (const id of ids) {
      for (const h of ledger.claimsOf(id)) touched.add(h);
      for (const p of partnerIds) for (const h of ledger.ownedBy(p, id)) touched.add(h);
    }
    const unclaimed = [...touched].filter((h) => !ledger.hasClaimants(h));
    if (unclaimed.length) {
      const split = unclaimed.map(splitHashKey);
      const { rows } = await this.client.query<{ record_id: string; alg: string; value: string }>(
        `SELECT d.record_id, d.alg, d.value FROM distributed_hashes d
           JOIN unnest($1::text[], $2::text[]) AS t(a, v) ON d.alg = t.a AND d.value = t.v`,
        [split.map((h) => h.alg), split.map((h) => h.value)],
      );
      const claimants = new Map<HashKey, string[]>(unclaimed.map((h) => [h, []]));
      for (const r of rows) claimants.get(hashKeyOf(r))?.push(r.record_id);
      for (const [h, recordIds] of claimants) ledger.addClaimants(h, recordIds);
    }
    const unheld = partnerIds.flatMap((p) => [...touched].filter((h) => !ledger.hasEntry(p, h)).map((h) => [p, h] as const));
    if (unheld.length) {
      const split = unheld.map(([, h]) => splitHashKey(h));
      const { rows } = await this.client.query<EntryRow>(
        `SELECT f.partner_id, f.alg, f.value, f.record_id, f.revision, f.category, f.content_type, f.extra
           FROM feed_entries f JOIN unnest($1::text[], $2::text[], $3::text[]) AS t(p, a, v) ON f.partner_id = t.p AND f.alg = t.a AND f.value = t.v`,
        [unheld.map(([p]) => p), split.map((h) => h.alg), split.map((h) => h.value)],
      );
      const found = new Set<string>();
      for (const row of rows) {
        ledger.addEntry(row.partner_id, hashKeyOf(row), toEntry(row));
        found.add(`${row.partner_id}|${hashKeyOf(row)}`);
      }
      for (const [p, h] of unheld) if (!found.has(`${p}|${h}`)) ledger.addEntry(p, h, null);
    }
    // Claimants govern; the records holding these hashes in a feed, and the survivors of those merged
    // away, decide whether a hash nobody claims waits for its survivor (planner.awaitingSurvivor).
    const holders = partnerIds.flatMap((p) => [...touched].map((h) => ledger.entry(p, h)?.recordId).filter((id): id is string => Boolean(id)));
    await this.loadBodies([...new Set([...[...touched].flatMap((h) => ledger.claimants(h)), ...holders])]);
    const mergedInto = [...records.map((r) => r.mergedInto), ...holders.map((id) => ledger.knownRecord(id)?.mergedInto)];
    await this.loadBodies([...new Set(mergedInto.filter((id): id is string => Boolean(id)))]);
  }

  /** Loads the latest applied body of each record; those with none are noted as absent. */
  private async loadBodies(recordIds: readonly string[]): Promise<void> {
    const missing = recordIds.filter((id) => !this.ledger.hasRecord(id));
    if (!missing.length) return;
    const { rows } = await this.client.query<{ body: Buffer }>("SELECT body FROM distributed_records WHERE record_id = ANY($1::uuid[])", [missing]);
    for (const r of rows) this.ledger.addRecord(this.codec.decode("CanonicalRecord", r.body).value);
    for (const id of missing) this.ledger.addAbsentRecord(id);
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

  /** Signs and queues one planned change (planner.ts has already recorded it in the ledger). */
  async apply(policy: PartnerPolicy, change: FeedChange): Promise<void> {
    const e = change.entry;
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
    this.issued.push({ record, recordId: e.recordId, delivery: policy.delivery });
    if (policy.delivery !== "s3") {
      this.outbox.push({ topic: this.topics.feed(policy.partnerId), key: `${e.alg}:${e.value}`, value: bytes, partition });
    }
    if (policy.delivery !== "kafka") this.log.push({ partnerId: policy.partnerId, partition, seq: record.seq, body: bytes });
  }

  async flush(): Promise<void> {
    const upserts: { partnerId: string; e: FeedEntry }[] = [];
    const removes: { partnerId: string; alg: string; value: string }[] = [];
    for (const [key, e] of this.ledger.changedEntries) {
      const bar = key.indexOf("|");
      const partnerId = key.slice(0, bar);
      if (e) upserts.push({ partnerId, e });
      else removes.push({ partnerId, ...splitHashKey(key.slice(bar + 1)) });
    }
    const merges = [...this.ledger.changedMerges];
    if (merges.length) {
      await this.client.query(
        "INSERT INTO distributed_merges (merged_id, survivor_id) SELECT * FROM unnest($1::uuid[], $2::uuid[]) ON CONFLICT (merged_id) DO UPDATE SET survivor_id = EXCLUDED.survivor_id",
        [merges.map(([m]) => m), merges.map(([, sv]) => sv)],
      );
    }
    const reclaimed = [...this.ledger.changedClaims];
    if (reclaimed.length) {
      await this.client.query("DELETE FROM distributed_hashes WHERE record_id = ANY($1::uuid[])", [reclaimed.map(([id]) => id)]);
      const claims = reclaimed.flatMap(([id, hashes]) => [...hashes].map((h) => ({ id, ...splitHashKey(h) })));
      if (claims.length) {
        await this.client.query(
          "INSERT INTO distributed_hashes (alg, value, record_id) SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[]) ON CONFLICT DO NOTHING",
          [claims.map((c) => c.alg), claims.map((c) => c.value), claims.map((c) => c.id)],
        );
      }
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
