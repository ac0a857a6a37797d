/**
 * Applies a batch of one feed partition to the partner's database in one transaction with the
 * consumed offset: verified records are upserted or tombstoned; refused ones are recorded as
 * alerts. A gap or broken chain halts the partition at that record (nothing after it applies)
 * until an operator resumes it (`hashrelay-sink resume`, operator.ts); a forged or reordered
 * record is skipped and alerted.
 */
import type { AvroCodec } from "../shared/wire/codec.ts";
import { GENESIS_DIGEST } from "../shared/wire/feed-chain.ts";
import { reasonOf } from "../shared/errors.ts";
import type { Logger } from "../shared/logging.ts";
import { lockStoredOffset, storeNextOffset } from "../shared/exactly-once-consumer.ts";
import { inTransaction } from "../shared/postgres.ts";
import type { Pool, PoolClient } from "../shared/postgres.ts";
import type { FeedRecord } from "../shared/wire/records.ts";
import { verifyFeedRecord } from "./verifier.ts";
import type { TrustedHubKey } from "./verifier.ts";

export interface SinkDeps {
  readonly pool: Pool;
  readonly codec: AvroCodec;
  readonly partnerId: string;
  readonly consumerGroup: string;
  readonly keys: () => readonly TrustedHubKey[];
  readonly logger: Logger;
}

export interface SinkResult {
  readonly applied: number;
  readonly duplicates: number;
  readonly refused: number;
  readonly halted: boolean;
  readonly nextOffset: string | null;
}

async function alert(client: PoolClient, a: { partition: number; seq: number | null; offset: number; reason: string; detail: string }) {
  await client.query("INSERT INTO sink_alerts (partition, seq, kafka_offset, reason, detail) VALUES ($1, $2, $3, $4, $5)", [
    a.partition,
    a.seq,
    a.offset,
    a.reason,
    a.detail,
  ]);
}

/** Writes the final state of each hash: UPSERT rows, and REMOVE as a tombstone row. */
async function applyRecords(client: PoolClient, records: readonly FeedRecord[]): Promise<void> {
  const upserts = records.filter((r) => r.op === "UPSERT");
  const removes = records.filter((r) => r.op === "REMOVE");
  if (upserts.length) {
    await client.query(
      `INSERT INTO partner_hashes (alg, value, category, content_type, record_ref, revision, extra, removed, updated_at)
       SELECT a, v, c, ct, r, rev, e::jsonb, false, now()
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[]) AS t(a, v, c, ct, r, rev, e)
       ON CONFLICT (alg, value) DO UPDATE SET category = EXCLUDED.category, content_type = EXCLUDED.content_type,
         record_ref = EXCLUDED.record_ref, revision = EXCLUDED.revision, extra = EXCLUDED.extra, removed = false, updated_at = now()`,
      [
        upserts.map((r) => r.alg),
        upserts.map((r) => r.value),
        upserts.map((r) => r.category),
        upserts.map((r) => r.contentType),
        upserts.map((r) => r.recordRef),
        upserts.map((r) => r.revision),
        upserts.map((r) => JSON.stringify(r.extra)),
      ],
    );
  }
  if (removes.length) {
    await client.query(
      `INSERT INTO partner_hashes (alg, value, category, content_type, record_ref, revision, removed, updated_at)
       SELECT a, v, NULL, NULL, r, rev, true, now() FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS t(a, v, r, rev)
       ON CONFLICT (alg, value) DO UPDATE SET removed = true, category = NULL, extra = '{}'::jsonb, revision = EXCLUDED.revision, updated_at = now()`,
      [removes.map((r) => r.alg), removes.map((r) => r.value), removes.map((r) => r.recordRef), removes.map((r) => r.revision)],
    );
  }
}

export async function applyFeedBatch(
  deps: SinkDeps,
  topic: string,
  partition: number,
  messages: readonly { offset: string; value: Buffer | null }[],
  now = new Date(),
): Promise<SinkResult> {
  return inTransaction(deps.pool, async (client) => {
    let next = await lockStoredOffset(client, deps.consumerGroup, topic, partition);
    await client.query("INSERT INTO feed_state (partition, last_seq, last_digest) VALUES ($1, 0, $2) ON CONFLICT DO NOTHING", [partition, GENESIS_DIGEST]);
    const { rows: st } = await client.query<{ last_seq: number; last_digest: Buffer; halted_reason: string | null; bootstrap_seq: number }>(
      "SELECT last_seq, last_digest, halted_reason, bootstrap_seq FROM feed_state WHERE partition = $1 FOR UPDATE",
      [partition],
    );
    const state = st[0] as { last_seq: number; last_digest: Buffer; halted_reason: string | null; bootstrap_seq: number };
    const bootstrapSeq = Number(state.bootstrap_seq);
    if (state.halted_reason) return { applied: 0, duplicates: 0, refused: 0, halted: true, nextOffset: null };
    let lastSeq = state.last_seq;
    let lastDigest = state.last_digest;
    let applied = 0;
    let duplicates = 0;
    let refused = 0;
    let halted = false;
    const writer = deps.codec.schema("FeedRecord");

    // Decode first, then look up every seq already applied in one query.
    const decoded = messages
      .filter((m) => Number(m.offset) >= next)
      .map((m) => {
        try {
          const d = deps.codec.decode("FeedRecord", m.value ?? Buffer.alloc(0));
          return { offset: Number(m.offset), record: d.value, writerType: d.writer.type, error: null };
        } catch (err) {
          return { offset: Number(m.offset), record: null, writerType: writer.type, error: err };
        }
      });
    const seqs = decoded.flatMap((d) => (d.record ? [d.record.seq] : []));
    const { rows: priorRows } = await client.query<{ seq: number; digest: Buffer }>(
      "SELECT seq, digest FROM feed_applied WHERE partition = $1 AND seq = ANY($2::bigint[])",
      [partition, seqs],
    );
    const appliedDigests = new Map(priorRows.map((r) => [Number(r.seq), r.digest]));
    // Final state per hash in this batch (the chain orders changes to the same hash).
    const finalState = new Map<string, FeedRecord>();
    const newlyApplied: { seq: number; digest: Buffer }[] = [];

    for (const d of decoded) {
      if (!d.record) {
        refused++;
        await alert(client, { partition, seq: null, offset: d.offset, reason: reasonOf(d.error), detail: (d.error as Error).message });
        next = d.offset + 1;
        continue;
      }
      const record = d.record;
      const prior = appliedDigests.get(record.seq);
      const verdict = verifyFeedRecord(record, d.writerType, {
        partnerId: deps.partnerId,
        partition,
        keys: deps.keys(),
        state: { lastSeq, lastDigest, bootstrapSeq },
        ...(prior ? { appliedDigest: prior } : {}),
        now,
      });
      if (verdict.kind === "duplicate") {
        duplicates++;
        next = d.offset + 1;
        continue;
      }
      if (verdict.kind === "refuse") {
        refused++;
        await alert(client, { partition, seq: record.seq, offset: d.offset, reason: verdict.reason, detail: verdict.detail });
        deps.logger.error({ partnerId: deps.partnerId, partition, seq: record.seq, reason: verdict.reason }, "feed record refused");
        if (verdict.halt) {
          // The details let `hashrelay-sink resume` continue at exactly this record. It passed the
          // signature checks (they come before seq and chain), so its prevDigest is the hub's.
          await client.query(
            "UPDATE feed_state SET halted_reason = $2, halted_seq = $3, halted_offset = $4, halted_prev_digest = $5, halted_at = now() WHERE partition = $1",
            [partition, `${verdict.reason}: ${verdict.detail}`, record.seq, d.offset, record.prevDigest],
          );
          halted = true;
          break; // the offset stays at this record: nothing after a gap is applied
        }
        next = d.offset + 1;
        continue;
      }
      finalState.set(`${record.alg}:${record.value}`, record);
      appliedDigests.set(record.seq, verdict.digest);
      newlyApplied.push({ seq: record.seq, digest: verdict.digest });
      lastSeq = record.seq;
      lastDigest = verdict.digest;
      applied++;
      next = d.offset + 1;
    }
    await applyRecords(client, [...finalState.values()]);
    if (newlyApplied.length) {
      await client.query(
        "INSERT INTO feed_applied (partition, seq, digest) SELECT $1, * FROM unnest($2::bigint[], $3::bytea[])",
        [partition, newlyApplied.map((a) => a.seq), newlyApplied.map((a) => a.digest)],
      );
    }
    await client.query("UPDATE feed_state SET last_seq = $2, last_digest = $3 WHERE partition = $1", [partition, lastSeq, lastDigest]);
    await storeNextOffset(client, deps.consumerGroup, topic, partition, next);
    return { applied, duplicates, refused, halted, nextOffset: String(next) };
  });
}
