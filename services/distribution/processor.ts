/**
 * Applies a batch of hashes.canonical.v1 to every partner feed in one PostgreSQL transaction,
 * with the consumed offset. Idempotent on recordId + revision: a repeated or older revision
 * changes nothing, so redelivery and outbox re-sends upstream are harmless.
 */
import type { AvroCodec } from "../shared/codec.ts";
import { buildRejection } from "../shared/dead-letter.ts";
import { reasonOf } from "../shared/errors.ts";
import type { Logger } from "../shared/logging.ts";
import { lockStoredOffset, storeNextOffset } from "../shared/exactly-once-consumer.ts";
import { inTransaction } from "../shared/postgres.ts";
import type { Pool, PoolClient } from "../shared/postgres.ts";
import type { CanonicalRecord } from "../shared/records.ts";
import type { TopicNames } from "../shared/topics.ts";
import { FeedWriter } from "./feed-writer.ts";
import type { HubSigner } from "./feed-writer.ts";
import { planChanges } from "./policy.ts";
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

/** Plans and writes one record's changes for every partner. Returns feed records issued. */
export async function distributeRecord(client: PoolClient, writer: FeedWriter, record: CanonicalRecord, policies: readonly PartnerPolicy[]): Promise<void> {
  for (const policy of policies) {
    const current = await writer.currentEntries(policy.partnerId, record.recordId);
    const { changes, unmappable } = planChanges(record, policy, current);
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
    const ids = [...new Set(batch.map((b) => b.record.recordId))];
    const { rows: priorRows } = await client.query<{ record_id: string; revision: number }>(
      "SELECT record_id, revision FROM distributed_records WHERE record_id = ANY($1::uuid[])",
      [ids],
    );
    const revisions = new Map(priorRows.map((r) => [r.record_id, Number(r.revision)]));
    await writer.prefetch(policies.map((p) => p.partnerId), ids);
    const latest = new Map<string, { revision: number; bytes: Buffer }>();
    for (const { record, bytes } of batch) {
      if ((revisions.get(record.recordId) ?? 0) >= record.revision) {
        skipped++;
        continue;
      }
      revisions.set(record.recordId, record.revision);
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
    await storeNextOffset(client, deps.consumerGroup, topic, partition, last + 1);
    return { records: applied, skipped, feedRecords: writer.issued.length, nextOffset: String(last + 1) };
  });
}

/**
 * Brings one partner's feed in line with its current policy over every record distributed so
 * far: used when a partner is added or its policy changes. Runs in slices, each one transaction.
 */
export async function reconcilePartner(deps: DistributionDeps, policy: PartnerPolicy): Promise<number> {
  let issued = 0;
  let after = "00000000-0000-0000-0000-000000000000";
  for (;;) {
    const slice = await inTransaction(deps.pool, async (client) => {
      await client.query("SELECT pg_advisory_xact_lock($1)", [APPLY_LOCK]);
      const { rows } = await client.query<{ record_id: string; body: Buffer }>(
        "SELECT record_id, body FROM distributed_records WHERE record_id > $1 ORDER BY record_id LIMIT 500",
        [after],
      );
      const writer = new FeedWriter(client, deps.codec, deps.topics, deps.hub, deps.now?.() ?? Date.now());
      await writer.prefetch([policy.partnerId], rows.map((r) => r.record_id));
      for (const r of rows) await distributeRecord(client, writer, deps.codec.decode("CanonicalRecord", r.body).value, [policy]);
      // Hashes held under records no longer known as entitled (e.g. a narrowed policy) are covered
      // above: planChanges removes what the record no longer grants.
      await writer.flush();
      if (rows.length === 500) after = (rows[rows.length - 1] as { record_id: string }).record_id;
      else {
        await client.query(
          "INSERT INTO policy_applied (partner_id, version) VALUES ($1, $2) ON CONFLICT (partner_id) DO UPDATE SET version = EXCLUDED.version",
          [policy.partnerId, policy.version],
        );
      }
      return { n: writer.issued.length, done: rows.length < 500 };
    });
    issued += slice.n;
    if (slice.done) return issued;
  }
}
