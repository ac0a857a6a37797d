/**
 * Applies a batch of one feed partition to the partner's database in one transaction with the
 * consumed offset: verified records are upserted or tombstoned; refused ones are recorded as
 * alerts. A gap or broken chain halts the partition at that record (nothing after it applies)
 * until an operator looks; a forged or reordered record is skipped and alerted.
 */
import type { AvroCodec } from "../shared/codec.ts";
import { GENESIS_DIGEST } from "../shared/feed-chain.ts";
import { reasonOf } from "../shared/errors.ts";
import type { Logger } from "../shared/logging.ts";
import { inTransaction } from "../shared/postgres.ts";
import type { Pool, PoolClient } from "../shared/postgres.ts";
import type { FeedRecord } from "../shared/records.ts";
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

async function applyRecord(client: PoolClient, r: FeedRecord): Promise<void> {
  if (r.op === "UPSERT") {
    await client.query(
      `INSERT INTO partner_hashes (alg, value, category, content_type, record_ref, revision, extra, removed, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, false, now())
       ON CONFLICT (alg, value) DO UPDATE SET category = EXCLUDED.category, content_type = EXCLUDED.content_type,
         record_ref = EXCLUDED.record_ref, revision = EXCLUDED.revision, extra = EXCLUDED.extra, removed = false, updated_at = now()`,
      [r.alg, r.value, r.category, r.contentType, r.recordRef, r.revision, JSON.stringify(r.extra)],
    );
  } else {
    await client.query(
      `INSERT INTO partner_hashes (alg, value, category, content_type, record_ref, revision, removed, updated_at)
       VALUES ($1, $2, NULL, NULL, $3, $4, true, now())
       ON CONFLICT (alg, value) DO UPDATE SET removed = true, category = NULL, extra = '{}'::jsonb, revision = EXCLUDED.revision, updated_at = now()`,
      [r.alg, r.value, r.recordRef, r.revision],
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
    await client.query(
      "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset) VALUES ($1, $2, $3, 0) ON CONFLICT DO NOTHING",
      [deps.consumerGroup, topic, partition],
    );
    const { rows: off } = await client.query<{ next_offset: number }>(
      "SELECT next_offset FROM consumer_offsets WHERE consumer_group = $1 AND topic = $2 AND partition = $3 FOR UPDATE",
      [deps.consumerGroup, topic, partition],
    );
    let next = (off[0] as { next_offset: number }).next_offset;
    await client.query("INSERT INTO feed_state (partition, last_seq, last_digest) VALUES ($1, 0, $2) ON CONFLICT DO NOTHING", [partition, GENESIS_DIGEST]);
    const { rows: st } = await client.query<{ last_seq: number; last_digest: Buffer; halted_reason: string | null }>(
      "SELECT last_seq, last_digest, halted_reason FROM feed_state WHERE partition = $1 FOR UPDATE",
      [partition],
    );
    const state = st[0] as { last_seq: number; last_digest: Buffer; halted_reason: string | null };
    if (state.halted_reason) return { applied: 0, duplicates: 0, refused: 0, halted: true, nextOffset: null };
    let lastSeq = state.last_seq;
    let lastDigest = state.last_digest;
    let applied = 0;
    let duplicates = 0;
    let refused = 0;
    let halted = false;
    const writer = deps.codec.schema("FeedRecord");
    for (const m of messages) {
      const offset = Number(m.offset);
      if (offset < next) continue;
      let record: FeedRecord;
      let writerType = writer.type;
      try {
        const decoded = deps.codec.decode("FeedRecord", m.value ?? Buffer.alloc(0));
        record = decoded.value;
        writerType = decoded.writer.type;
      } catch (err) {
        refused++;
        await alert(client, { partition, seq: null, offset, reason: reasonOf(err), detail: (err as Error).message });
        next = offset + 1;
        continue;
      }
      const { rows: prior } = await client.query<{ digest: Buffer }>("SELECT digest FROM feed_applied WHERE partition = $1 AND seq = $2", [partition, record.seq]);
      const verdict = verifyFeedRecord(record, writerType, {
        partnerId: deps.partnerId,
        partition,
        keys: deps.keys(),
        state: { lastSeq, lastDigest },
        ...(prior[0] ? { appliedDigest: prior[0].digest } : {}),
        now,
      });
      if (verdict.kind === "duplicate") {
        duplicates++;
        next = offset + 1;
        continue;
      }
      if (verdict.kind === "refuse") {
        refused++;
        await alert(client, { partition, seq: record.seq, offset, reason: verdict.reason, detail: verdict.detail });
        deps.logger.error({ partnerId: deps.partnerId, partition, seq: record.seq, reason: verdict.reason }, "feed record refused");
        if (verdict.halt) {
          await client.query("UPDATE feed_state SET halted_reason = $2 WHERE partition = $1", [partition, `${verdict.reason}: ${verdict.detail}`]);
          halted = true;
          break; // the offset stays at this record: nothing after a gap is applied
        }
        next = offset + 1;
        continue;
      }
      await applyRecord(client, record);
      await client.query("INSERT INTO feed_applied (partition, seq, digest) VALUES ($1, $2, $3)", [partition, record.seq, verdict.digest]);
      lastSeq = record.seq;
      lastDigest = verdict.digest;
      applied++;
      next = offset + 1;
    }
    await client.query("UPDATE feed_state SET last_seq = $2, last_digest = $3 WHERE partition = $1", [partition, lastSeq, lastDigest]);
    await client.query("UPDATE consumer_offsets SET next_offset = $4 WHERE consumer_group = $1 AND topic = $2 AND partition = $3", [
      deps.consumerGroup,
      topic,
      partition,
      next,
    ]);
    return { applied, duplicates, refused, halted, nextOffset: String(next) };
  });
}
