/**
 * Applies a batch of hashes.canonical.v1 to every partner feed in one PostgreSQL transaction,
 * with the consumed offset. Idempotent on recordId + revision: a repeated or older revision
 * changes nothing, so redelivery and outbox re-sends upstream are harmless. Records with different
 * recordIds may arrive in any order; planner.ts plans per hash so that the order does not matter.
 * Every feed record issued is audited (audit.ts) in the same transaction, through feed_outbox.
 */
import type { AvroCodec } from "../shared/wire/codec.ts";
import { buildRejection } from "../shared/dead-letter.ts";
import { reasonOf } from "../shared/errors.ts";
import type { Logger } from "../shared/logging.ts";
import { lockStoredOffset, storeNextOffset } from "../shared/exactly-once-consumer.ts";
import { inTransaction } from "../shared/postgres.ts";
import type { Pool, PoolClient } from "../shared/postgres.ts";
import type { CanonicalRecord } from "../shared/wire/records.ts";
import type { TopicNames } from "../shared/topics.ts";
import { disclosureEvent, enqueueAudit, policyAppliedEvent } from "./audit.ts";
import { FeedWriter } from "./feed-writer.ts";
import type { HubSigner } from "./feed-writer.ts";
import { claimsOfRevision, planRecord, splitHashKey } from "./planner.ts";
import type { PartnerPolicy } from "./policy.ts";

export const SERVICE = "distribution";
/** Serialises apply steps of distribution instances, and snapshots (exports.ts uses the same id). */
const APPLY_LOCK = 7431004;

export interface DistributionDeps {
  readonly pool: Pool;
  readonly codec: AvroCodec;
  readonly topics: TopicNames;
  readonly hub: HubSigner;
  readonly consumerGroup: string;
  readonly logger: Logger;
  /** Current policies; refreshed by the caller. */
  policies(): readonly PartnerPolicy[];
  readonly now?: () => number;
}

export interface DistributionResult {
  readonly records: number;
  readonly skipped: number;
  readonly feedRecords: number;
  readonly nextOffset: string | null;
}

/**
 * Plans one record's revision for every partner (planner.ts) and signs and queues the changes.
 * The writer's ledger must hold what the record touches (FeedWriter.load).
 */
export async function distributeRecord(client: PoolClient, writer: FeedWriter, record: CanonicalRecord, policies: readonly PartnerPolicy[]): Promise<void> {
  for (const { policy, changes, unmappable } of planRecord(writer.ledger, record, policies)) {
    for (const change of changes) await writer.apply(policy, change);
    if (unmappable) {
      await client.query(
        `INSERT INTO unmappable_counts (partner_id, category, count) VALUES ($1, $2, 1)
         ON CONFLICT (partner_id, category) DO UPDATE SET count = unmappable_counts.count + 1`,
        [policy.partnerId, `${record.classification.uk}->${policy.scheme}`],
      );
    }
  }
}

export async function processCanonicalBatch(
  deps: DistributionDeps,
  topic: string,
  partition: number,
  messages: readonly { offset: string; value: Buffer | null }[],
): Promise<DistributionResult> {
  const now = deps.now?.() ?? Date.now();
  return inTransaction(deps.pool, async (client) => {
    await client.query("SELECT pg_advisory_xact_lock($1)", [APPLY_LOCK]);
    const next = await lockStoredOffset(client, deps.consumerGroup, topic, partition);
    const writer = new FeedWriter(client, deps.codec, deps.topics, deps.hub, now);
    const policies = deps.policies();
    let applied = 0;
    let skipped = 0;
    let last = next - 1;
    // Decode the batch, then fetch prior revisions and partner holdings in one query each.
    const batch: { offset: number; record: CanonicalRecord; bytes: Buffer }[] = [];
    for (const m of messages) {
      const offset = Number(m.offset);
      last = Math.max(last, offset);
      if (offset < next) {
        skipped++;
        continue;
      }
      try {
        batch.push({ offset, record: deps.codec.decode("CanonicalRecord", m.value ?? Buffer.alloc(0)).value, bytes: m.value ?? Buffer.alloc(0) });
      } catch (err) {
        const rejection = buildRejection(m.value ?? Buffer.alloc(0), reasonOf(err), (err as Error).message, {
          service: SERVICE,
          channel: "kafka",
          sourceTopic: topic,
          sourcePartition: partition,
          sourceOffset: m.offset,
        });
        await client.query("INSERT INTO feed_outbox (topic, message_key, message_value) VALUES ($1, NULL, $2)", [
          deps.topics.rejected,
          deps.codec.encode("Rejection", rejection),
        ]);
      }
    }
    // Loads the stored revision of every record in the batch, and all that planning them touches.
    await writer.load(policies.map((p) => p.partnerId), batch.map((b) => b.record));
    const latest = new Map<string, { revision: number; bytes: Buffer }>();
    for (const { record, bytes } of batch) {
      if ((writer.ledger.knownRecord(record.recordId)?.revision ?? 0) >= record.revision) {
        skipped++;
        continue;
      }
      latest.set(record.recordId, { revision: record.revision, bytes });
      await distributeRecord(client, writer, record, policies);
      applied++;
    }
    if (latest.size) {
      await client.query(
        `INSERT INTO distributed_records (record_id, revision, body) SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bytea[])
         ON CONFLICT (record_id) DO UPDATE SET revision = EXCLUDED.revision, body = EXCLUDED.body`,
        [[...latest.keys()], [...latest.values()].map((l) => l.revision), [...latest.values()].map((l) => l.bytes)],
      );
    }
    await writer.flush();
    await enqueueAudit(client, deps.codec, deps.topics, writer.issued.map((d) => disclosureEvent(d, { kind: "canonical" }, now)));
    await storeNextOffset(client, deps.consumerGroup, topic, partition, last + 1);
    return { records: applied, skipped, feedRecords: writer.issued.length, nextOffset: String(last + 1) };
  });
}

/**
 * Brings one partner's feed in line with its current policy over every record distributed so
 * far: used when a partner is added or its policy changes. Runs in slices, each one transaction;
 * the last slice records the applied version and its "policy.applied" audit event. Counts in that
 * event cover this run: when a run is interrupted and started again, the slices committed before
 * were audited record by record but are not counted again.
 */
export async function reconcilePartner(deps: DistributionDeps, policy: PartnerPolicy): Promise<number> {
  const totals = { records: 0, upserts: 0, removes: 0 };
  let after = "00000000-0000-0000-0000-000000000000";
  for (;;) {
    const slice = await inTransaction(deps.pool, async (client) => {
      await client.query("SELECT pg_advisory_xact_lock($1)", [APPLY_LOCK]);
      const { rows } = await client.query<{ record_id: string; body: Buffer }>(
        "SELECT record_id, body FROM distributed_records WHERE record_id > $1 ORDER BY record_id LIMIT 500",
        [after],
      );
      const now = deps.now?.() ?? Date.now();
      const writer = new FeedWriter(client, deps.codec, deps.topics, deps.hub, now);
      const records = rows.map((r) => deps.codec.decode("CanonicalRecord", r.body).value);
      for (const r of records) writer.ledger.addRecord(r);
      await writer.load([policy.partnerId], records);
      // Every hash a record claims or owns in the feed is planned again: entries the policy no
      // longer grants (e.g. a narrowed policy) are removed, newly granted ones upserted.
      for (const r of records) await distributeRecord(client, writer, r, [policy]);
      await writer.flush();
      const audit = writer.issued.map((d) => disclosureEvent(d, { kind: "policy", version: policy.version }, now));
      const counts = {
        records: records.length,
        upserts: writer.issued.filter((d) => d.record.op === "UPSERT").length,
        removes: writer.issued.filter((d) => d.record.op === "REMOVE").length,
      };
      const done = rows.length < 500;
      if (!done) after = (rows[rows.length - 1] as { record_id: string }).record_id;
      else {
        const { rows: prior } = await client.query<{ version: number }>("SELECT version FROM policy_applied WHERE partner_id = $1", [policy.partnerId]);
        await client.query(
          "INSERT INTO policy_applied (partner_id, version) VALUES ($1, $2) ON CONFLICT (partner_id) DO UPDATE SET version = EXCLUDED.version",
          [policy.partnerId, policy.version],
        );
        audit.push(
          policyAppliedEvent(
            {
              policy,
              previousVersion: prior[0]?.version ?? null,
              recordsEvaluated: totals.records + counts.records,
              upserts: totals.upserts + counts.upserts,
              removes: totals.removes + counts.removes,
            },
            now,
          ),
        );
      }
      await enqueueAudit(client, deps.codec, deps.topics, audit);
      return { counts, done };
    });
    totals.records += slice.counts.records;
    totals.upserts += slice.counts.upserts;
    totals.removes += slice.counts.removes;
    if (slice.done) return totals.upserts + totals.removes;
  }
}

/**
 * Once, after migration 002 on a hub database that had already distributed records: fills
 * distributed_hashes from the stored bodies, and forgets policy_applied so that the policy refresh
 * that follows re-plans every partner's feed per hash (repairing entries planned before).
 * Returns the claims written (0 when there was nothing to do).
 */
export async function backfillHashClaims(deps: Pick<DistributionDeps, "pool" | "codec" | "logger">): Promise<number> {
  return inTransaction(deps.pool, async (client) => {
    await client.query("SELECT pg_advisory_xact_lock($1)", [APPLY_LOCK]);
    const { rows: pending } = await client.query("DELETE FROM distribution_backfills WHERE name = 'hash_claims' RETURNING name");
    if (!pending.length) return 0;
    let claimed = 0;
    let after = "00000000-0000-0000-0000-000000000000";
    for (;;) {
      const { rows } = await client.query<{ record_id: string; body: Buffer }>(
        "SELECT record_id, body FROM distributed_records WHERE record_id > $1 ORDER BY record_id LIMIT 1000",
        [after],
      );
      const claims = rows.flatMap((r) => claimsOfRevision(deps.codec.decode("CanonicalRecord", r.body).value).map((h) => ({ id: r.record_id, ...splitHashKey(h) })));
      if (claims.length) {
        await client.query(
          "INSERT INTO distributed_hashes (alg, value, record_id) SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[]) ON CONFLICT DO NOTHING",
          [claims.map((c) => c.alg), claims.map((c) => c.value), claims.map((c) => c.id)],
        );
      }
      claimed += claims.length;
      if (rows.length < 1000) break;
      after = (rows[rows.length - 1] as { record_id: string }).record_id;
    }
    await client.query("DELETE FROM policy_applied");
    deps.logger.info({ claimed }, "hash claims backfilled; every partner feed will be reconciled");
    return claimed;
  });
}
