/**
 * Every SQL statement of applying a feed round (applier.ts), inside the exactly-once step's
 * transaction. Each one covers all partitions of the round (arrays through unnest), so a round
 * costs the same few round trips however many partitions it carries.
 */
import type { PoolClient } from "../shared/postgres.ts";
import { GENESIS_DIGEST } from "../shared/wire/feed-chain.ts";
import type { FeedRecord } from "../shared/wire/records.ts";
import type { Alert, Halt } from "./chain-walk.ts";

/** A partition's row of feed_state, as the apply reads it. */
export interface FeedState {
  readonly partition: number;
  readonly lastSeq: number;
  readonly lastDigest: Buffer;
  readonly bootstrapSeq: number;
  readonly haltedReason: string | null;
  /** Kafka offset below which the partition's records have been read (chain-walk.ts). */
  readonly judgedTo: number;
}

interface FeedStateRow {
  partition: number;
  last_seq: number;
  last_digest: Buffer;
  bootstrap_seq: number;
  halted_reason: string | null;
  judged_to: number;
}

/**
 * The partitions' chain states, created at genesis where missing, row-locked until COMMIT in
 * partition order (as the step locks consumer_offsets): one statement once the rows exist.
 */
export async function lockFeedStates(tx: PoolClient, partitions: readonly number[]): Promise<Map<number, FeedState>> {
  const lock = async () => {
    const { rows } = await tx.query<FeedStateRow>(
      `SELECT partition, last_seq, last_digest, bootstrap_seq, halted_reason, judged_to FROM feed_state
        WHERE partition = ANY($1::int[]) ORDER BY partition FOR UPDATE`,
      [partitions],
    );
    return new Map(
      rows.map((r): [number, FeedState] => [
        r.partition,
        {
          partition: r.partition,
          lastSeq: Number(r.last_seq),
          lastDigest: r.last_digest,
          bootstrapSeq: Number(r.bootstrap_seq),
          haltedReason: r.halted_reason,
          judgedTo: Number(r.judged_to),
        },
      ]),
    );
  };
  let states = await lock();
  if (states.size < partitions.length) {
    await tx.query(
      "INSERT INTO feed_state (partition, last_seq, last_digest) SELECT p, 0, $2 FROM unnest($1::int[]) AS p ON CONFLICT DO NOTHING",
      [partitions.filter((p) => !states.has(p)), GENESIS_DIGEST],
    );
    states = await lock();
  }
  return states;
}

/** The digests already applied at these (partition, seq) pairs, by partition then seq. */
export async function appliedDigestsOf(
  tx: PoolClient,
  wanted: readonly { partition: number; seq: number }[],
): Promise<Map<number, Map<number, Buffer>>> {
  const byPartition = new Map<number, Map<number, Buffer>>();
  if (wanted.length === 0) return byPartition;
  const { rows } = await tx.query<{ partition: number; seq: number; digest: Buffer }>(
    `SELECT partition, seq, digest FROM feed_applied
      WHERE (partition, seq) IN (SELECT * FROM unnest($1::int[], $2::bigint[]))`,
    [wanted.map((w) => w.partition), wanted.map((w) => w.seq)],
  );
  for (const r of rows) {
    const seqs = byPartition.get(r.partition) ?? new Map<number, Buffer>();
    byPartition.set(r.partition, seqs.set(Number(r.seq), r.digest));
  }
  return byPartition;
}

/** Alerts as rows of sink_alerts, their ids in the order given. */
export async function insertAlerts(tx: PoolClient, alerts: readonly Alert[]): Promise<void> {
  if (alerts.length === 0) return;
  await tx.query(
    `INSERT INTO sink_alerts (partition, seq, kafka_offset, reason, detail)
     SELECT p, s, o, r, d FROM unnest($1::int[], $2::bigint[], $3::bigint[], $4::text[], $5::text[]) WITH ORDINALITY AS a(p, s, o, r, d, n)
      ORDER BY n`,
    [
      alerts.map((a) => a.partition),
      alerts.map((a) => a.seq),
      alerts.map((a) => a.offset),
      alerts.map((a) => a.reason),
      alerts.map((a) => a.detail),
    ],
  );
}

/**
 * Marks partitions halted. The details let `hashrelay-sink resume` continue at exactly the halting
 * record. It passed the signature checks (they come before seq and chain), so its prevDigest is the hub's.
 */
export async function storeHalts(tx: PoolClient, halts: readonly (Halt & { partition: number })[]): Promise<void> {
  if (halts.length === 0) return;
  await tx.query(
    `UPDATE feed_state f SET halted_reason = h.reason, halted_seq = h.seq, halted_offset = h.kafka_offset,
            halted_prev_digest = h.prev_digest, halted_at = now()
       FROM unnest($1::int[], $2::text[], $3::bigint[], $4::bigint[], $5::bytea[]) AS h(partition, reason, seq, kafka_offset, prev_digest)
      WHERE f.partition = h.partition`,
    [
      halts.map((h) => h.partition),
      halts.map((h) => h.reason),
      halts.map((h) => h.seq),
      halts.map((h) => h.offset),
      halts.map((h) => h.prevDigest),
    ],
  );
}

/**
 * Writes the final state of each hash: UPSERT rows, and REMOVE as a tombstone row. One record per
 * hash: a statement must not touch the same row twice.
 */
export async function writeHashes(tx: PoolClient, records: readonly FeedRecord[]): Promise<void> {
  const upserts = records.filter((r) => r.op === "UPSERT");
  const removes = records.filter((r) => r.op === "REMOVE");
  if (upserts.length) {
    await tx.query(
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
    await tx.query(
      `INSERT INTO partner_hashes (alg, value, category, content_type, record_ref, revision, removed, updated_at)
       SELECT a, v, NULL, NULL, r, rev, true, now() FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS t(a, v, r, rev)
       ON CONFLICT (alg, value) DO UPDATE SET removed = true, category = NULL, extra = '{}'::jsonb, revision = EXCLUDED.revision, updated_at = now()`,
      [removes.map((r) => r.alg), removes.map((r) => r.value), removes.map((r) => r.recordRef), removes.map((r) => r.revision)],
    );
  }
}

/** The seq and digest of every record applied, so a redelivery is told from a reorder or forgery. */
export async function recordApplied(tx: PoolClient, applied: readonly { partition: number; seq: number; digest: Buffer }[]): Promise<void> {
  if (applied.length === 0) return;
  await tx.query("INSERT INTO feed_applied (partition, seq, digest) SELECT * FROM unnest($1::int[], $2::bigint[], $3::bytea[])", [
    applied.map((a) => a.partition),
    applied.map((a) => a.seq),
    applied.map((a) => a.digest),
  ]);
}

/** Moves the chain heads, and how far the partitions were read, of the partitions where either changed. */
export async function storeChainHeads(
  tx: PoolClient,
  heads: readonly { partition: number; lastSeq: number; lastDigest: Buffer; judgedTo: number }[],
): Promise<void> {
  if (heads.length === 0) return;
  await tx.query(
    `UPDATE feed_state f SET last_seq = h.last_seq, last_digest = h.last_digest, judged_to = h.judged_to
       FROM unnest($1::int[], $2::bigint[], $3::bytea[], $4::bigint[]) AS h(partition, last_seq, last_digest, judged_to)
      WHERE f.partition = h.partition`,
    [heads.map((h) => h.partition), heads.map((h) => h.lastSeq), heads.map((h) => h.lastDigest), heads.map((h) => h.judgedTo)],
  );
}
