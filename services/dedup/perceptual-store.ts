/**
 * PostgreSQL side of dedup's perceptual values: how many distinct records carry each value of a
 * batch, which values are degenerate (degenerate_hashes), which records carry a value, and the
 * writes that keep degenerate_hashes current. The rules are degenerate.ts's and engine.ts's.
 *
 * Invariant: every perceptual value of a record the batch publishes has its degenerate status
 * looked up (loadDegenerateStatus) before finaliseChanges, which refuses to guess.
 */
import type { PoolClient } from "../shared/postgres.ts";
import type { DegenerateReason, Hash, HashAlg } from "../shared/wire/records.ts";
import { hashKey, isIdentity } from "./engine.ts";
import type { Degeneracy, WorkingSet } from "./engine.ts";

type Value = Pick<Hash, "alg" | "value">;

const columns = (xs: readonly Value[]) => [xs.map((h) => h.alg), xs.map((h) => h.value)];

function uniquePerceptual(hashes: Iterable<Value>, skip: (k: string) => boolean): Value[] {
  const out = new Map<string, Value>();
  for (const h of hashes) if (!isIdentity(h) && !skip(hashKey(h))) out.set(hashKey(h), { alg: h.alg, value: h.value });
  return [...out.values()];
}

/** For the batch's perceptual values: the distinct records carrying each in the store, and their degenerate status. */
export async function loadPerceptual(client: PoolClient, ws: WorkingSet, hashes: readonly Value[]): Promise<void> {
  const wanted = uniquePerceptual(hashes, (k) => ws.perceptualStored.has(k));
  if (wanted.length === 0) return;
  const { rows } = await client.query<{ alg: HashAlg; value: string; records: number }>(
    `SELECT w.alg, w.value, count(h.record_id)::int AS records FROM unnest($1::text[], $2::text[]) AS w(alg, value)
       LEFT JOIN record_hashes h ON h.alg = w.alg AND h.value = w.value AND NOT h.exact
      GROUP BY w.alg, w.value`,
    columns(wanted),
  );
  for (const r of rows) ws.perceptualStored.set(hashKey(r), r.records);
  await loadDegenerate(client, ws, wanted);
}

/** Looks up the degenerate status of every perceptual value of the working set's changed records not yet known. */
export async function loadDegenerateStatus(client: PoolClient, ws: WorkingSet): Promise<void> {
  const changed = [...ws.records.values()].filter((r) => r.changed).flatMap((r) => [...r.hashes.values()]);
  await loadDegenerate(
    client,
    ws,
    uniquePerceptual(changed, (k) => ws.degenerateKnown.has(k)),
  );
}

async function loadDegenerate(client: PoolClient, ws: WorkingSet, wanted: readonly Value[]): Promise<void> {
  const unknown = wanted.filter((h) => !ws.degenerateKnown.has(hashKey(h)));
  if (unknown.length === 0) return;
  const { rows } = await client.query<{ alg: HashAlg; value: string; reason: DegenerateReason; records: number; first_seen_at: number }>(
    `SELECT d.alg, d.value, d.reason, d.records, d.first_seen_at FROM degenerate_hashes d
       JOIN unnest($1::text[], $2::text[]) AS w(alg, value) ON d.alg = w.alg AND d.value = w.value`,
    columns(unknown),
  );
  for (const h of unknown) ws.degenerateKnown.add(hashKey(h));
  for (const r of rows) {
    const d: Degeneracy = { alg: r.alg, value: r.value, reason: r.reason, records: r.records, firstSeenAt: r.first_seen_at, isNew: false };
    ws.degenerate.set(hashKey(r), d);
  }
}

/** The records carrying any of these perceptual values. */
export async function carriersOf(client: PoolClient, values: readonly Value[]): Promise<string[]> {
  if (values.length === 0) return [];
  const { rows } = await client.query<{ record_id: string }>(
    `SELECT DISTINCT h.record_id FROM record_hashes h
       JOIN unnest($1::text[], $2::text[]) AS w(alg, value) ON h.alg = w.alg AND h.value = w.value
      WHERE NOT h.exact`,
    columns(values),
  );
  return rows.map((r) => r.record_id);
}

/** The records carrying one of these perceptual values on which the paired agency has a sighting. */
export async function ownCarriersOf(client: PoolClient, wanted: readonly { agencyId: string; hash: Value }[]): Promise<string[]> {
  const perceptual = wanted.filter((w) => !isIdentity(w.hash));
  if (perceptual.length === 0) return [];
  const { rows } = await client.query<{ record_id: string }>(
    `SELECT DISTINCT h.record_id FROM unnest($1::text[], $2::text[], $3::text[]) AS w(alg, value, agency_id)
       JOIN record_hashes h ON h.alg = w.alg AND h.value = w.value AND NOT h.exact
       JOIN sightings s ON s.record_id = h.record_id AND s.agency_id = w.agency_id`,
    [perceptual.map((w) => w.hash.alg), perceptual.map((w) => w.hash.value), perceptual.map((w) => w.agencyId)],
  );
  return rows.map((r) => r.record_id);
}

/**
 * After writeChanges: stores the values that became degenerate in this batch and recounts the
 * carriers of every degenerate value the batch touched.
 */
export async function writeDegenerate(client: PoolClient, ws: WorkingSet): Promise<void> {
  const fresh = [...ws.degenerate.values()].filter((d) => d.isNew);
  if (fresh.length) {
    await client.query(
      `INSERT INTO degenerate_hashes (alg, value, reason, records, first_seen_at)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::bigint[])
       ON CONFLICT (alg, value) DO NOTHING`,
      [...columns(fresh), fresh.map((d) => d.reason), fresh.map((d) => d.records), fresh.map((d) => d.firstSeenAt)],
    );
  }
  const touched = [...ws.degenerate.entries()].filter(([k]) => ws.perceptualStored.has(k)).map(([, d]) => d);
  if (touched.length === 0) return;
  await client.query(
    `UPDATE degenerate_hashes d SET records = c.records
       FROM (SELECT w.alg, w.value, count(h.record_id)::int AS records FROM unnest($1::text[], $2::text[]) AS w(alg, value)
               LEFT JOIN record_hashes h ON h.alg = w.alg AND h.value = w.value AND NOT h.exact
              GROUP BY w.alg, w.value) c
      WHERE d.alg = c.alg AND d.value = c.value AND d.records <> c.records`,
    columns(touched),
  );
}
