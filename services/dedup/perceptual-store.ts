/**
 * PostgreSQL side of dedup's perceptual values: how many distinct records carry each value of a
 * batch, which values are degenerate (degenerate_hashes), and the recount that keeps
 * degenerate_hashes current. The counts and statuses are read as one column of the round's load
 * statement (store.ts), and a new degenerate value is inserted by the round's write statement
 * (round-write.ts). The rules are degenerate.ts's and engine.ts's.
 *
 * Invariant: every perceptual value of a record the batch publishes has its degenerate status
 * looked up before finaliseChanges, which refuses to guess: the batch's values with their counts,
 * the values of every record loaded with the record (store.ts), and whatever else by
 * loadDegenerateStatus.
 */
import type { PoolClient } from "../shared/postgres.ts";
import type { DegenerateReason, Hash, HashAlg } from "../shared/wire/records.ts";
import { hashKey, isIdentity } from "./engine.ts";
import type { Degeneracy, WorkingSet } from "./engine.ts";
import { bound } from "../shared/pg-arrays.ts";

type Value = Pick<Hash, "alg" | "value">;

const columns = (xs: readonly Value[]) => [xs.map((h) => h.alg), xs.map((h) => h.value)];

function uniquePerceptual(hashes: Iterable<Value>, skip: (k: string) => boolean): Value[] {
  const out = new Map<string, Value>();
  for (const h of hashes) if (!isIdentity(h) && !skip(hashKey(h))) out.set(hashKey(h), { alg: h.alg, value: h.value });
  return [...out.values()];
}

/** A degenerate_hashes row, or nulls when the value is not degenerate. */
export interface DegenerateColumns {
  readonly reason: DegenerateReason | null;
  readonly degenerate_records: number | null;
  readonly first_seen_at: number | null;
}

/** Records a value's looked-up degenerate status, unless the working set knows it already. */
export function knowDegenerate(ws: WorkingSet, h: Value, d: DegenerateColumns): void {
  const k = hashKey(h);
  if (ws.degenerateKnown.has(k)) return;
  ws.degenerateKnown.add(k);
  if (d.reason === null) return;
  ws.degenerate.set(k, {
    alg: h.alg,
    value: h.value,
    reason: d.reason,
    records: d.degenerate_records ?? 0,
    firstSeenAt: d.first_seen_at ?? 0,
    isNew: false,
  });
}

/** The batch's perceptual values whose carriers are not counted yet. */
export const uncountedPerceptual = (ws: WorkingSet, hashes: readonly Value[]): Value[] =>
  uniquePerceptual(hashes, (k) => ws.perceptualStored.has(k));

/**
 * The column `perceptual` over the values (typed text[] expressions algs and values): for each, the distinct records carrying
 * it in the store and its degenerate status.
 */
export function perceptualColumn(p: { algs: string; values: string }): string {
  return `(SELECT coalesce(json_agg(x), '[]') FROM (
            SELECT w.alg, w.value,
                   (SELECT count(*)::int FROM record_hashes h WHERE h.alg = w.alg AND h.value = w.value AND NOT h.exact) AS records,
                   d.reason, d.records AS degenerate_records, d.first_seen_at
              FROM unnest(${p.algs}, ${p.values}) AS w(alg, value)
              LEFT JOIN degenerate_hashes d ON d.alg = w.alg AND d.value = w.value) x) AS perceptual`;
}

export interface PerceptualRow extends DegenerateColumns {
  readonly alg: HashAlg;
  readonly value: string;
  readonly records: number;
}

/** What perceptualColumn read, into the working set. */
export function addPerceptual(ws: WorkingSet, rows: readonly PerceptualRow[]): void {
  for (const r of rows) {
    ws.perceptualStored.set(hashKey(r), r.records);
    knowDegenerate(ws, r, r);
  }
}

/** Looks up the degenerate status of every perceptual value of the working set's changed records not yet known. */
export async function loadDegenerateStatus(client: PoolClient, ws: WorkingSet): Promise<void> {
  const changed = [...ws.records.values()].filter((r) => r.changed).flatMap((r) => [...r.hashes.values()]);
  const unknown = uniquePerceptual(changed, (k) => ws.degenerateKnown.has(k));
  if (unknown.length === 0) return;
  const { rows } = await client.query<{ alg: HashAlg; value: string; reason: DegenerateReason; records: number; first_seen_at: number }>(
    bound(
      `SELECT d.alg, d.value, d.reason, d.records, d.first_seen_at FROM degenerate_hashes d
       JOIN unnest($1::text[], $2::text[]) AS w(alg, value) ON d.alg = w.alg AND d.value = w.value`,
      columns(unknown),
    ),
  );
  const found = new Map(rows.map((r) => [hashKey(r), r]));
  for (const h of unknown) {
    const r = found.get(hashKey(h));
    knowDegenerate(ws, h, { reason: r?.reason ?? null, degenerate_records: r?.records ?? null, first_seen_at: r?.first_seen_at ?? null });
  }
}

/** The values that became degenerate in this batch: the round's write statement stores them. */
export const freshDegenerate = (ws: WorkingSet): Degeneracy[] => [...ws.degenerate.values()].filter((d) => d.isNew);

/** After the round's writes: recounts the carriers of every degenerate value the batch touched. */
export async function recountDegenerate(client: PoolClient, ws: WorkingSet): Promise<void> {
  const touched = [...ws.degenerate.entries()].filter(([k]) => ws.perceptualStored.has(k)).map(([, d]) => d);
  if (touched.length === 0) return;
  await client.query(
    bound(
      `UPDATE degenerate_hashes d SET records = c.records
       FROM (SELECT w.alg, w.value, count(h.record_id)::int AS records FROM unnest($1::text[], $2::text[]) AS w(alg, value)
               LEFT JOIN record_hashes h ON h.alg = w.alg AND h.value = w.value AND NOT h.exact
              GROUP BY w.alg, w.value) c
      WHERE d.alg = c.alg AND d.value = c.value AND d.records <> c.records`,
      columns(touched),
    ),
  );
}
