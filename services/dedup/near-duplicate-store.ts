/**
 * PostgreSQL side of the near-duplicate indexes (near-duplicate-linker.ts): what a catch-up reads.
 * The catch-up columns are one SQL text used twice: inside the round's load statement (store.ts),
 * so a round pays no statement of its own for them, and on their own at start-up and for every
 * further page of a long catch-up.
 *
 * Invariant: the rows read are the perceptual rows (near algorithms) past the index's hash_seq that
 * are not degenerate now, in hash_seq order, except those the instance inserted itself (`own`):
 * for those only whether they were committed and are still indexable is read, since the instance
 * already holds their values.
 */
import type { PoolClient } from "../shared/postgres.ts";
import { NEAR_ALGORITHMS } from "../shared/wire/hash-algorithms.ts";
import type { HashAlg } from "../shared/wire/records.ts";
import { bound } from "../shared/pg-arrays.ts";

/**
 * Most rows a catch-up reads per statement: a round's load reads a small page, which keeps the
 * plan PostgreSQL caches for the load statement a plain index scan whatever it estimates; start-up
 * and the pages after a full one read large pages.
 */
export const ROUND_CATCH_UP_PAGE = 1_000;
export const CATCH_UP_PAGE = 50_000;

/** A perceptual row as an index takes it. */
export interface NearHashRow {
  readonly hash_seq: number;
  readonly alg: HashAlg;
  readonly value: string;
  readonly quality: number | null;
  readonly record_no: number;
}

/** A value that became SHARED after the index last looked. */
export interface DegenerateSeqRow {
  readonly seq: number;
  readonly alg: HashAlg;
  readonly value: string;
}

/** Where a catch-up starts. */
export interface CatchUpFrom {
  /** The last hash_seq the index holds. */
  readonly hashSeq: number;
  /** The last degenerate_seq the index has dealt with. */
  readonly degenerateSeq: number;
  /** hash_seq values this instance inserted since its last catch-up, committed or not. */
  readonly own: readonly number[];
}

/** What a catch-up read. */
export interface CatchUpRows {
  /** Rows other than `own`, in hash_seq order: a page. */
  readonly hashes: readonly NearHashRow[];
  /** The page was full: there may be more rows past its last one. */
  readonly more: boolean;
  /** Of `own`: those committed and not degenerate now. */
  readonly ownIndexable: readonly number[];
  /** Values that became SHARED past `degenerateSeq`, in degenerate_seq order. */
  readonly degenerate: readonly DegenerateSeqRow[];
}

/**
 * The columns near_hashes, own_indexable and newly_degenerate, over the given typed parameter
 * expressions (hashSeq bigint, own bigint[], degenerateSeq bigint, algs text[]).
 */
export function catchUpColumns(p: { hashSeq: string; own: string; degenerateSeq: string; algs: string; page: number }): string {
  const indexable = "NOT EXISTS (SELECT 1 FROM degenerate_hashes d WHERE d.alg = h.alg AND d.value = h.value)";
  return `(SELECT coalesce(json_agg(c ORDER BY c.hash_seq), '[]') FROM (
            SELECT h.hash_seq, h.alg, h.value, h.quality, r.record_no FROM record_hashes h JOIN canonical_records r USING (record_id)
             WHERE h.alg = ANY(${p.algs}) AND h.hash_seq > ${p.hashSeq} AND h.hash_seq <> ALL(${p.own})
               AND ${indexable}
             ORDER BY h.hash_seq LIMIT ${p.page}) c) AS near_hashes,
          (SELECT coalesce(json_agg(h.hash_seq), '[]') FROM record_hashes h
            WHERE h.hash_seq = ANY(${p.own}) AND ${indexable}) AS own_indexable,
          (SELECT coalesce(json_agg(n ORDER BY n.seq), '[]') FROM (
            SELECT degenerate_seq AS seq, alg, value FROM degenerate_hashes
             WHERE degenerate_seq > ${p.degenerateSeq} AND reason = 'SHARED') n) AS newly_degenerate`;
}

/** The row shape of catchUpColumns. */
export interface CatchUpColumns {
  near_hashes: NearHashRow[];
  own_indexable: number[];
  newly_degenerate: DegenerateSeqRow[];
}

export const catchUpRowsOf = (c: CatchUpColumns, page: number): CatchUpRows => ({
  hashes: c.near_hashes,
  more: c.near_hashes.length >= page,
  ownIndexable: c.own_indexable,
  degenerate: c.newly_degenerate,
});

/** The parameter values of catchUpColumns, in the order hashSeq, own, degenerateSeq, algs. */
export const catchUpValues = (from: CatchUpFrom): unknown[] => [from.hashSeq, from.own, from.degenerateSeq, NEAR_ALGORITHMS];

// Planned for its values each time: it runs at start-up and after a full page only.
const CATCH_UP = `SELECT ${catchUpColumns({ hashSeq: "$1::bigint", own: "$2::bigint[]", degenerateSeq: "$3::bigint", algs: "$4::text[]", page: CATCH_UP_PAGE })}`;

/** A catch-up on its own: at start-up, and for the pages after a full one. */
export async function readCatchUp(client: PoolClient, from: CatchUpFrom): Promise<CatchUpRows> {
  const { rows } = await client.query<CatchUpColumns>(bound(CATCH_UP, catchUpValues(from)));
  return catchUpRowsOf(rows[0] as CatchUpColumns, CATCH_UP_PAGE);
}

/** The last degenerate_seq: a first catch-up leaves out every value degenerate by then, so it starts there. */
export async function latestDegenerateSeq(client: PoolClient): Promise<number> {
  const { rows } = await client.query<{ seq: number }>("SELECT coalesce(max(degenerate_seq), 0)::bigint AS seq FROM degenerate_hashes");
  return Number(rows[0]?.seq ?? 0);
}

/**
 * The perceptual rows up to `upToSeq` of every record carrying one of these values, each with
 * whether its value is degenerate now: what those records are indexed again with.
 */
export async function carriedRows(
  client: PoolClient,
  values: readonly Pick<DegenerateSeqRow, "alg" | "value">[],
  upToSeq: number,
): Promise<(Omit<NearHashRow, "hash_seq"> & { degenerate: boolean })[]> {
  const { rows } = await client.query<Omit<NearHashRow, "hash_seq"> & { degenerate: boolean }>(
    bound(
      `SELECT r.record_no, h.alg, h.value, h.quality,
            EXISTS (SELECT 1 FROM degenerate_hashes d WHERE d.alg = h.alg AND d.value = h.value) AS degenerate
       FROM record_hashes h JOIN canonical_records r USING (record_id)
      WHERE NOT h.exact AND h.hash_seq <= $3 AND h.record_id IN (
        SELECT x.record_id FROM record_hashes x JOIN unnest($1::text[], $2::text[]) AS w(alg, value)
          ON x.alg = w.alg AND x.value = w.value WHERE NOT x.exact)`,
      [values.map((r) => r.alg), values.map((r) => r.value), upToSeq],
    ),
  );
  return rows;
}
