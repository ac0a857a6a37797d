/**
 * Applies a batch of one feed partition to the partner's database, inside the exactly-once step's
 * transaction (shared/exactly-once-step.ts, which stores the consumed offset with it): verified
 * records are upserted or tombstoned; refused ones are recorded as alerts. A gap or broken chain
 * halts the partition at that record (nothing after it applies) until an operator resumes it
 * (`hashrelay-sink resume`, operator.ts); a forged or reordered record is skipped and alerted.
 */
import type avro from "avsc";
import type { AvroCodec } from "../shared/wire/codec.ts";
import { GENESIS_DIGEST } from "../shared/wire/feed-chain.ts";
import { reasonOf } from "../shared/errors.ts";
import type { Logger } from "../shared/logging.ts";
import type { PartitionApplied, UnappliedBatch } from "../shared/exactly-once-step.ts";
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
}

interface Alert {
  readonly partition: number;
  readonly seq: number | null;
  readonly offset: number;
  readonly reason: string;
  readonly detail: string;
}

async function alert(client: PoolClient, a: Alert) {
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

/** A message decoded, or the reason it could not be. */
interface Decoded {
  readonly offset: number;
  readonly record: FeedRecord | null;
  readonly writerType: avro.Type;
  readonly error: unknown;
}

interface Halt {
  readonly reason: string;
  readonly seq: number;
  readonly offset: number;
  readonly prevDigest: Buffer;
}

/** What checking a batch against the partition's chain decided; written by applyFeedBatch. */
interface ChainWalk {
  applied: number;
  duplicates: number;
  refused: number;
  /** Where the next batch starts: after the last record dealt with, or at the halting record. */
  next: number;
  lastSeq: number;
  lastDigest: Buffer;
  readonly alerts: Alert[];
  halt: Halt | null;
  /** Final state per hash in this batch (the chain orders changes to the same hash). */
  readonly finalState: Map<string, FeedRecord>;
  readonly newlyApplied: { seq: number; digest: Buffer }[];
}

/**
 * The partner sink's part of the exactly-once step (exactly-once-step.ts), inside its transaction:
 * checks the unapplied records against the partition's chain state, then writes what that decided.
 * A halted partition (now or earlier) is held, its stored offset at the halting record.
 */
export async function applyFeedBatch(
  deps: SinkDeps,
  tx: PoolClient,
  batch: UnappliedBatch<{ offset: string; value: Buffer | null }>,
  now = new Date(),
): Promise<PartitionApplied<SinkResult>> {
  const { partition } = batch;
  const state = await lockFeedState(tx, partition);
  if (state.halted_reason) return { result: { applied: 0, duplicates: 0, refused: 0, halted: true }, nextOffset: null, hold: true };
  // Decode first, then look up every seq already applied in one query.
  const decoded = batch.messages.map((m) => decode(deps.codec, m));
  const appliedDigests = await appliedDigestsOf(
    tx,
    partition,
    decoded.flatMap((d) => (d.record ? [d.record.seq] : [])),
  );
  const walk = walkChain(deps, partition, batch.storedOffset, decoded, state, appliedDigests, now);
  for (const a of walk.alerts) await alert(tx, a);
  if (walk.halt) {
    // The details let `hashrelay-sink resume` continue at exactly this record. It passed the
    // signature checks (they come before seq and chain), so its prevDigest is the hub's.
    await tx.query(
      `UPDATE feed_state SET halted_reason = $2, halted_seq = $3, halted_offset = $4, halted_prev_digest = $5, halted_at = now()
        WHERE partition = $1`,
      [partition, walk.halt.reason, walk.halt.seq, walk.halt.offset, walk.halt.prevDigest],
    );
  }
  await applyRecords(tx, [...walk.finalState.values()]);
  if (walk.newlyApplied.length) {
    await tx.query("INSERT INTO feed_applied (partition, seq, digest) SELECT $1, * FROM unnest($2::bigint[], $3::bytea[])", [
      partition,
      walk.newlyApplied.map((a) => a.seq),
      walk.newlyApplied.map((a) => a.digest),
    ]);
  }
  await tx.query("UPDATE feed_state SET last_seq = $2, last_digest = $3 WHERE partition = $1", [partition, walk.lastSeq, walk.lastDigest]);
  const halted = walk.halt !== null;
  const result = { applied: walk.applied, duplicates: walk.duplicates, refused: walk.refused, halted };
  return { result, nextOffset: walk.next, hold: halted };
}

interface FeedStateRow {
  last_seq: number;
  last_digest: Buffer;
  halted_reason: string | null;
  bootstrap_seq: number;
}

/**
 * The partition's chain state, created at genesis if new, row-locked until COMMIT: one statement
 * once the row exists (after the partition's first batch).
 */
async function lockFeedState(tx: PoolClient, partition: number): Promise<FeedStateRow> {
  const lock = () =>
    tx.query<FeedStateRow>("SELECT last_seq, last_digest, halted_reason, bootstrap_seq FROM feed_state WHERE partition = $1 FOR UPDATE", [
      partition,
    ]);
  let { rows } = await lock();
  if (!rows[0]) {
    await tx.query("INSERT INTO feed_state (partition, last_seq, last_digest) VALUES ($1, 0, $2) ON CONFLICT DO NOTHING", [
      partition,
      GENESIS_DIGEST,
    ]);
    ({ rows } = await lock());
  }
  return rows[0] as FeedStateRow;
}

/** The digests of the records of these seqs already applied to the partition. */
async function appliedDigestsOf(tx: PoolClient, partition: number, seqs: readonly number[]): Promise<Map<number, Buffer>> {
  const { rows } = await tx.query<{ seq: number; digest: Buffer }>(
    "SELECT seq, digest FROM feed_applied WHERE partition = $1 AND seq = ANY($2::bigint[])",
    [partition, seqs],
  );
  return new Map(rows.map((r) => [Number(r.seq), r.digest]));
}

function decode(codec: AvroCodec, m: { offset: string; value: Buffer | null }): Decoded {
  try {
    const d = codec.decode("FeedRecord", m.value ?? Buffer.alloc(0));
    return { offset: Number(m.offset), record: d.value, writerType: d.writer.type, error: null };
  } catch (err) {
    return { offset: Number(m.offset), record: null, writerType: codec.schema("FeedRecord").type, error: err };
  }
}

/**
 * Checks each decoded record in offset order against the chain (verifier.ts) and decides: apply,
 * skip a duplicate, refuse with an alert, or halt at a gap or broken chain (nothing after it).
 */
function walkChain(
  deps: SinkDeps,
  partition: number,
  storedOffset: number,
  decoded: readonly Decoded[],
  state: FeedStateRow,
  appliedDigests: Map<number, Buffer>,
  now: Date,
): ChainWalk {
  const walk: ChainWalk = {
    applied: 0,
    duplicates: 0,
    refused: 0,
    next: storedOffset,
    lastSeq: state.last_seq,
    lastDigest: state.last_digest,
    alerts: [],
    halt: null,
    finalState: new Map(),
    newlyApplied: [],
  };
  const bootstrapSeq = Number(state.bootstrap_seq);
  for (const d of decoded) {
    if (!d.record) {
      walk.refused++;
      walk.alerts.push({ partition, seq: null, offset: d.offset, reason: reasonOf(d.error), detail: (d.error as Error).message });
      walk.next = d.offset + 1;
      continue;
    }
    const record = d.record;
    const prior = appliedDigests.get(record.seq);
    const verdict = verifyFeedRecord(record, d.writerType, {
      partnerId: deps.partnerId,
      partition,
      keys: deps.keys(),
      state: { lastSeq: walk.lastSeq, lastDigest: walk.lastDigest, bootstrapSeq },
      ...(prior ? { appliedDigest: prior } : {}),
      now,
    });
    if (verdict.kind === "refuse") {
      walk.refused++;
      walk.alerts.push({ partition, seq: record.seq, offset: d.offset, reason: verdict.reason, detail: verdict.detail });
      deps.logger.error({ partnerId: deps.partnerId, partition, seq: record.seq, reason: verdict.reason }, "feed record refused");
      if (verdict.halt) {
        walk.halt = { reason: `${verdict.reason}: ${verdict.detail}`, seq: record.seq, offset: d.offset, prevDigest: record.prevDigest };
        break; // the offset stays at this record: nothing after a gap is applied
      }
    } else if (verdict.kind === "duplicate") {
      walk.duplicates++;
    } else {
      walk.finalState.set(`${record.alg}:${record.value}`, record);
      appliedDigests.set(record.seq, verdict.digest);
      walk.newlyApplied.push({ seq: record.seq, digest: verdict.digest });
      walk.lastSeq = record.seq;
      walk.lastDigest = verdict.digest;
      walk.applied++;
    }
    walk.next = d.offset + 1;
  }
  return walk;
}
