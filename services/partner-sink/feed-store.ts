/**
 * Every SQL statement of applying a feed round (applier.ts), inside the exactly-once step's
 * transaction. Each one covers all partitions of the round (arrays through unnest), so a round
 * costs the same few round trips however many partitions it carries: the reads, then one write.
 */
import { intArrayLiteral } from "../shared/exactly-once-step.ts";
import type { PoolClient } from "../shared/postgres.ts";
import { GENESIS_DIGEST } from "../shared/wire/feed-chain.ts";
import type { FeedRecord } from "../shared/wire/records.ts";
import type { Alert, Halt } from "./chain-walk.ts";
import { bound } from "../shared/pg-arrays.ts";

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

/** What a round reads before it walks the chains. */
export interface RoundState {
  readonly states: Map<number, FeedState>;
  /** The digests already applied at the round's (partition, seq) pairs, by partition then seq. */
  readonly appliedDigests: Map<number, Map<number, Buffer>>;
}

type RoundRow = FeedStateRow & { seq: number | null; digest: Buffer | null };

/** The round's read: chain states row-locked in partition order, and the digests applied at the wanted seqs. */
function roundReadSql(partitions: string, seqPartitions: string, seqs: string): string {
  return `WITH s AS (SELECT partition, last_seq, last_digest, bootstrap_seq, halted_reason, judged_to FROM feed_state
                WHERE partition = ANY(${partitions}::int[]) ORDER BY partition FOR UPDATE)
    SELECT s.*, NULL::bigint AS seq, NULL::bytea AS digest FROM s
    UNION ALL
    SELECT partition, NULL, NULL, NULL, NULL, NULL, seq, digest FROM feed_applied
     WHERE (partition, seq) IN (SELECT * FROM unnest(${seqPartitions}::int[], ${seqs}::bigint[]))`;
}

/**
 * The round's read as a statement without parameters (integers written as literals), for the
 * exactly-once step to send in the round's first round trip, right after the offset lock
 * (ExactlyOnceStep.readAfterLock); its rows go to `readRound` as `locked`.
 */
export function roundReadStatement(partitions: readonly number[], wanted: readonly { partition: number; seq: number }[]): string {
  return roundReadSql(
    intArrayLiteral(partitions),
    intArrayLiteral(wanted.map((w) => w.partition)),
    intArrayLiteral(wanted.map((w) => w.seq)),
  );
}

/**
 * The partitions' chain states, created at genesis where missing, row-locked until COMMIT in
 * partition order (as the step locks consumer_offsets), with the digests already applied at the
 * round's (partition, seq) pairs: no statement of its own once the rows exist, when the step read
 * them after its offset lock (`locked`, the rows of `roundReadStatement`), else one. The offset
 * lock, taken before, already keeps other instances off these partitions, so the applied digests
 * read with the states are current.
 */
export async function readRound(
  tx: PoolClient,
  partitions: readonly number[],
  wanted: readonly { partition: number; seq: number }[],
  locked?: readonly Record<string, unknown>[],
): Promise<RoundState> {
  const read = async () => {
    const { rows } = await tx.query<RoundRow>(
      bound(roundReadSql("$1", "$2", "$3"), [partitions, wanted.map((w) => w.partition), wanted.map((w) => w.seq)]),
    );
    return roundStateOf(rows);
  };
  // The rows of roundReadSql, as the parameterised read gives them (pg types each column alike).
  let round = locked ? roundStateOf(locked as unknown as readonly RoundRow[]) : await read();
  if (round.states.size < partitions.length) {
    await tx.query(
      "INSERT INTO feed_state (partition, last_seq, last_digest) SELECT p, 0, $2 FROM unnest($1::int[]) AS p ON CONFLICT DO NOTHING",
      [partitions.filter((p) => !round.states.has(p)), GENESIS_DIGEST],
    );
    round = await read();
  }
  return round;
}

function roundStateOf(rows: readonly RoundRow[]): RoundState {
  const states = new Map<number, FeedState>();
  const appliedDigests = new Map<number, Map<number, Buffer>>();
  for (const r of rows) {
    if (r.seq !== null && r.digest !== null) {
      const seqs = appliedDigests.get(r.partition) ?? new Map<number, Buffer>();
      appliedDigests.set(r.partition, seqs.set(Number(r.seq), r.digest));
      continue;
    }
    states.set(r.partition, {
      partition: r.partition,
      lastSeq: Number(r.last_seq),
      lastDigest: r.last_digest,
      bootstrapSeq: Number(r.bootstrap_seq),
      haltedReason: r.halted_reason,
      judgedTo: Number(r.judged_to),
    });
  }
  return { states, appliedDigests };
}

/** What a round writes, for all its partitions at once. */
export interface RoundWrites {
  readonly alerts: readonly Alert[];
  readonly halts: readonly (Halt & { partition: number })[];
  /** The final state of each hash: one record per hash (a statement must not touch a row twice). */
  readonly hashes: readonly FeedRecord[];
  readonly applied: readonly { partition: number; seq: number; digest: Buffer }[];
  /** Partitions whose chain head or read position moved. */
  readonly heads: readonly { partition: number; lastSeq: number; lastDigest: Buffer; judgedTo: number }[];
}

/**
 * Writes a round in one statement: each kind of write is a data-modifying CTE over all partitions,
 * and kinds with nothing to write are left out. The CTEs share one snapshot and must not touch a
 * row twice: hashes are one record each, UPSERT and REMOVE rows are disjoint, and a partition's
 * halt and chain head are one UPDATE of its feed_state row.
 */
export async function writeRound(tx: PoolClient, w: RoundWrites): Promise<void> {
  const params: unknown[] = [];
  const $ = (value: unknown) => `$${params.push(value)}`;
  const ctes: string[] = [];
  if (w.alerts.length) {
    // Ids in the order given: inserted in the array's order.
    ctes.push(`INSERT INTO sink_alerts (partition, seq, kafka_offset, reason, detail)
       SELECT p, s, o, r, d FROM unnest(${$(w.alerts.map((a) => a.partition))}::int[], ${$(w.alerts.map((a) => a.seq))}::bigint[],
         ${$(w.alerts.map((a) => a.offset))}::bigint[], ${$(w.alerts.map((a) => a.reason))}::text[], ${$(w.alerts.map((a) => a.detail))}::text[])
         WITH ORDINALITY AS a(p, s, o, r, d, n) ORDER BY n`);
  }
  const states = feedStateUpdates(w.halts, w.heads);
  if (states.length) {
    // A halt keeps what `hashrelay-sink resume` needs to continue at exactly the halting record; it
    // passed the signature checks (they come before seq and chain), so its prevDigest is the hub's.
    ctes.push(`UPDATE feed_state f SET last_seq = coalesce(u.last_seq, f.last_seq), last_digest = coalesce(u.last_digest, f.last_digest),
         judged_to = coalesce(u.judged_to, f.judged_to), halted_reason = coalesce(u.reason, f.halted_reason),
         halted_seq = CASE WHEN u.reason IS NULL THEN f.halted_seq ELSE u.halt_seq END,
         halted_offset = CASE WHEN u.reason IS NULL THEN f.halted_offset ELSE u.halt_offset END,
         halted_prev_digest = CASE WHEN u.reason IS NULL THEN f.halted_prev_digest ELSE u.prev_digest END,
         halted_at = CASE WHEN u.reason IS NULL THEN f.halted_at ELSE now() END
       FROM unnest(${$(states.map((u) => u.partition))}::int[], ${$(states.map((u) => u.lastSeq))}::bigint[], ${$(states.map((u) => u.lastDigest))}::bytea[],
         ${$(states.map((u) => u.judgedTo))}::bigint[], ${$(states.map((u) => u.reason))}::text[], ${$(states.map((u) => u.haltSeq))}::bigint[],
         ${$(states.map((u) => u.haltOffset))}::bigint[], ${$(states.map((u) => u.prevDigest))}::bytea[])
         AS u(partition, last_seq, last_digest, judged_to, reason, halt_seq, halt_offset, prev_digest)
      WHERE f.partition = u.partition`);
  }
  const upserts = w.hashes.filter((r) => r.op === "UPSERT");
  if (upserts.length) {
    ctes.push(`INSERT INTO partner_hashes (alg, value, category, content_type, record_ref, revision, extra, removed, updated_at)
       SELECT a, v, c, ct, r, rev, e::jsonb, false, now()
         FROM unnest(${$(upserts.map((r) => r.alg))}::text[], ${$(upserts.map((r) => r.value))}::text[], ${$(upserts.map((r) => r.category))}::text[],
           ${$(upserts.map((r) => r.contentType))}::text[], ${$(upserts.map((r) => r.recordRef))}::text[], ${$(upserts.map((r) => r.revision))}::bigint[],
           ${$(upserts.map((r) => JSON.stringify(r.extra)))}::text[]) AS t(a, v, c, ct, r, rev, e)
       ON CONFLICT (alg, value) DO UPDATE SET category = EXCLUDED.category, content_type = EXCLUDED.content_type,
         record_ref = EXCLUDED.record_ref, revision = EXCLUDED.revision, extra = EXCLUDED.extra, removed = false, updated_at = now()`);
  }
  const removes = w.hashes.filter((r) => r.op === "REMOVE");
  if (removes.length) {
    // REMOVE leaves a tombstone row.
    ctes.push(`INSERT INTO partner_hashes (alg, value, category, content_type, record_ref, revision, removed, updated_at)
       SELECT a, v, NULL, NULL, r, rev, true, now()
         FROM unnest(${$(removes.map((r) => r.alg))}::text[], ${$(removes.map((r) => r.value))}::text[], ${$(removes.map((r) => r.recordRef))}::text[],
           ${$(removes.map((r) => r.revision))}::bigint[]) AS t(a, v, r, rev)
       ON CONFLICT (alg, value) DO UPDATE SET removed = true, category = NULL, extra = '{}'::jsonb, revision = EXCLUDED.revision, updated_at = now()`);
  }
  if (w.applied.length) {
    // The seq and digest of every record applied, so a redelivery is told from a reorder or forgery.
    ctes.push(`INSERT INTO feed_applied (partition, seq, digest)
       SELECT * FROM unnest(${$(w.applied.map((a) => a.partition))}::int[], ${$(w.applied.map((a) => a.seq))}::bigint[], ${$(w.applied.map((a) => a.digest))}::bytea[])`);
  }
  if (ctes.length === 0) return;
  await tx.query(bound(`WITH ${ctes.map((c, i) => `w${i} AS (${c})`).join(",\n")}\nSELECT 1`, params));
}

interface FeedStateUpdate {
  readonly partition: number;
  readonly lastSeq: number | null;
  readonly lastDigest: Buffer | null;
  readonly judgedTo: number | null;
  readonly reason: string | null;
  readonly haltSeq: number | null;
  readonly haltOffset: number | null;
  readonly prevDigest: Buffer | null;
}

/** One row per partition whose head moved, whose partition halted, or both. */
function feedStateUpdates(halts: RoundWrites["halts"], heads: RoundWrites["heads"]): FeedStateUpdate[] {
  const none = { lastSeq: null, lastDigest: null, judgedTo: null, reason: null, haltSeq: null, haltOffset: null, prevDigest: null };
  const byPartition = new Map<number, FeedStateUpdate>();
  for (const h of heads)
    byPartition.set(h.partition, { ...none, partition: h.partition, lastSeq: h.lastSeq, lastDigest: h.lastDigest, judgedTo: h.judgedTo });
  for (const h of halts) {
    const u = byPartition.get(h.partition) ?? { ...none, partition: h.partition };
    byPartition.set(h.partition, { ...u, reason: h.reason, haltSeq: h.seq, haltOffset: h.offset, prevDigest: h.prevDigest });
  }
  return [...byPartition.values()].sort((a, b) => a.partition - b.partition);
}
