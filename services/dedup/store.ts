/**
 * PostgreSQL side of dedup's loads: a round's working set in one statement (loadRound), and the
 * records a round needs later (loadRecords). Records are found by their exact hashes only
 * (record_hashes_exact: one owner per exact value); perceptual rows are one per carrying record and
 * never used to find a record (perceptual-store.ts counts them). The round's writes are in
 * round-write.ts.
 *
 * A record always comes with what it merged into (followed to the end), its hashes, its sightings
 * and the degenerate status of its perceptual values, as JSON of one statement; a record already in
 * the working set is never replaced, so what the round changed in memory stays.
 */
import type { PoolClient, Queryable } from "../shared/postgres.ts";
import type { ContentType, Hash, HashAlg, IcsCategory, LawEnforcementMetadata, UkCategory } from "../shared/wire/records.ts";
import { emptyWorkingSet, hashKey, isIdentity } from "./engine.ts";
import type { Sighting, WorkingSet } from "./engine.ts";
import { namedStatement } from "./named-statement.ts";
import { ROUND_CATCH_UP_PAGE, catchUpColumns, catchUpRowsOf, catchUpValues } from "./near-duplicate-store.ts";
import type { CatchUpColumns, CatchUpFrom, CatchUpRows } from "./near-duplicate-store.ts";
import { addPerceptual, knowDegenerate, perceptualColumn, uncountedPerceptual } from "./perceptual-store.ts";
import type { DegenerateColumns, PerceptualRow } from "./perceptual-store.ts";
import { bound } from "../shared/pg-arrays.ts";

export { emptyWorkingSet };

type Value = Pick<Hash, "alg" | "value">;

interface RecordJson {
  record_id: string;
  record_no: number;
  revision: number;
  deleted: boolean;
  merged_into: string | null;
  content_type: ContentType;
  near_duplicates: string[];
  first_seen_at: number;
  updated_at: number;
  hashes: ({ alg: HashAlg; value: string; quality: number | null } & DegenerateColumns)[];
  sightings: SightingJson[];
}

interface SightingJson {
  agency_id: string;
  op: "ASSERT" | "RETRACT";
  submission_id: string;
  key_id: string;
  uk: UkCategory;
  ics: IcsCategory | null;
  submitter_status: string;
  restricted: LawEnforcementMetadata;
  submitted_at: number;
}

/**
 * The column `records`: every record of `seeds(record_id)` and, transitively, what they were
 * merged into, as JSON (RecordJson). Needs WITH RECURSIVE.
 */
function recordsCte(seeds: string): string {
  return `seeds(record_id) AS (${seeds}),
    loaded(record_id) AS (
      SELECT record_id FROM seeds
      UNION
      SELECT r.merged_into FROM loaded l JOIN canonical_records r ON r.record_id = l.record_id WHERE r.merged_into IS NOT NULL)`;
}

const RECORDS_COLUMN = `(SELECT coalesce(json_agg(x), '[]') FROM (
    SELECT r.*,
           (SELECT coalesce(json_agg(json_build_object('alg', h.alg, 'value', h.value, 'quality', h.quality, 'reason', d.reason,
                                                       'degenerate_records', d.records, 'first_seen_at', d.first_seen_at)), '[]')
              FROM record_hashes h LEFT JOIN degenerate_hashes d ON NOT h.exact AND d.alg = h.alg AND d.value = h.value
             WHERE h.record_id = r.record_id) AS hashes,
           (SELECT coalesce(json_agg(s), '[]') FROM sightings s WHERE s.record_id = r.record_id) AS sightings
      FROM loaded JOIN canonical_records r USING (record_id)) x) AS records`;

/** Adds loaded records not yet in the working set, with their hashes, sightings and degenerate statuses. */
function addRecords(ws: WorkingSet, records: readonly RecordJson[]): void {
  for (const r of records) {
    if (ws.records.has(r.record_id)) continue;
    const hashes = new Map<string, Hash>();
    for (const h of r.hashes) {
      const hash: Hash = { alg: h.alg, value: h.value, quality: h.quality };
      hashes.set(hashKey(hash), hash);
      if (isIdentity(hash)) ws.recordByHash.set(hashKey(hash), r.record_id);
      else knowDegenerate(ws, hash, h);
    }
    const sightings = new Map<string, Sighting>();
    for (const s of r.sightings) {
      sightings.set(s.agency_id, {
        agencyId: s.agency_id,
        op: s.op,
        uk: s.uk,
        ics: s.ics,
        submittedAt: s.submitted_at,
        submissionId: s.submission_id,
        keyId: s.key_id,
        submitterStatus: s.submitter_status,
        restricted: s.restricted,
      });
    }
    ws.records.set(r.record_id, {
      recordId: r.record_id,
      recordNo: r.record_no,
      revision: r.revision,
      deleted: r.deleted,
      mergedInto: r.merged_into,
      contentType: r.content_type,
      hashes,
      sightings,
      nearDuplicates: new Set(r.near_duplicates),
      firstSeenAt: r.first_seen_at,
      updatedAt: r.updated_at,
      isNew: false,
      changed: false,
    });
  }
}

const LOAD_RECORDS = namedStatement(
  "dedup.records",
  `WITH RECURSIVE ${recordsCte(`
      SELECT unnest($1::uuid[])
      UNION SELECT record_id FROM canonical_records WHERE record_no = ANY($2::bigint[])
      UNION SELECT h.record_id FROM unnest($3::text[], $4::text[]) AS w(alg, value)
              JOIN record_hashes h ON h.alg = w.alg AND h.value = w.value AND NOT h.exact`)}
    SELECT ${RECORDS_COLUMN}`,
);

/** Which records to load: by id, by record_no, or every record carrying one of some perceptual values. */
export interface RecordSeeds {
  readonly recordIds?: readonly string[];
  readonly recordNos?: readonly number[];
  readonly carrying?: readonly Value[];
}

/** Loads records (and the records they were merged into) not yet in the working set. */
export async function loadRecords(client: PoolClient, ws: WorkingSet, seeds: RecordSeeds): Promise<void> {
  const ids = [...new Set(seeds.recordIds ?? [])].filter((id) => !ws.records.has(id));
  const nos = seeds.recordNos ?? [];
  const carrying = seeds.carrying ?? [];
  if (ids.length === 0 && nos.length === 0 && carrying.length === 0) return;
  const { rows } = await client.query<{ records: RecordJson[] }>(
    bound(LOAD_RECORDS, [ids, nos, carrying.map((h) => h.alg), carrying.map((h) => h.value)]),
  );
  addRecords(ws, rows[0]?.records ?? []);
}

/**
 * The round's load, one statement: which submissions were applied before; the records owning the
 * batch's exact hashes, and those carrying a RETRACT's perceptual value with a sighting of the
 * retracting agency (engine.ts); the batch's perceptual values counted; and the near-duplicate
 * indexes' catch-up. Parts with nothing to look up cost an empty unnest.
 */
const LOAD_ROUND = namedStatement(
  "dedup.load",
  `WITH RECURSIVE ${recordsCte(`
      SELECT h.record_id FROM unnest($2::text[], $3::text[]) AS w(alg, value)
        JOIN record_hashes h ON h.alg = w.alg AND h.value = w.value AND h.exact
      UNION
      SELECT h.record_id FROM unnest($4::text[], $5::text[], $6::text[]) AS w(alg, value, agency_id)
        JOIN record_hashes h ON h.alg = w.alg AND h.value = w.value AND NOT h.exact
        JOIN sightings s ON s.record_id = h.record_id AND s.agency_id = w.agency_id`)}
    SELECT ARRAY(SELECT submission_id FROM applied_submissions WHERE submission_id = ANY($1::text[])) AS applied,
           ${RECORDS_COLUMN},
           ${perceptualColumn({ algs: "$7::text[]", values: "$8::text[]" })},
           ${catchUpColumns({ hashSeq: "$9::bigint", own: "$10::bigint[]", degenerateSeq: "$11::bigint", algs: "$12::text[]", page: ROUND_CATCH_UP_PAGE })}`,
);

export interface RoundLoad {
  readonly submissionIds: readonly string[];
  /** Every hash of the batch's submissions. */
  readonly hashes: readonly Value[];
  /** The perceptual values of the batch's RETRACTs, each with the retracting agency. */
  readonly retractions: readonly { agencyId: string; hash: Value }[];
  readonly catchUp: CatchUpFrom;
}

export interface RoundLoaded {
  /** Of the submission ids, those applied before. */
  readonly applied: Set<string>;
  readonly catchUp: CatchUpRows;
}

/** Loads a round's working set into `ws` (empty) and reads the near-duplicate catch-up. */
export async function loadRound(client: PoolClient, ws: WorkingSet, load: RoundLoad): Promise<RoundLoaded> {
  const exact = load.hashes.filter((h) => isIdentity(h) && !ws.recordByHash.has(hashKey(h)));
  const retractions = load.retractions.filter((r) => !isIdentity(r.hash));
  const perceptual = uncountedPerceptual(ws, load.hashes);
  const { rows } = await client.query<{ applied: string[]; records: RecordJson[]; perceptual: PerceptualRow[] } & CatchUpColumns>(
    bound(LOAD_ROUND, [
      load.submissionIds,
      exact.map((h) => h.alg),
      exact.map((h) => h.value),
      retractions.map((r) => r.hash.alg),
      retractions.map((r) => r.hash.value),
      retractions.map((r) => r.agencyId),
      perceptual.map((h) => h.alg),
      perceptual.map((h) => h.value),
      ...catchUpValues(load.catchUp),
    ]),
  );
  const row = rows[0];
  if (!row) throw new Error("dedup.load returned no row");
  addRecords(ws, row.records);
  addPerceptual(ws, row.perceptual);
  return { applied: new Set(row.applied), catchUp: catchUpRowsOf(row, ROUND_CATCH_UP_PAGE) };
}

/** Agencies the registry flags as grading authorities. */
export async function registeredGradingAuthorities(db: Queryable): Promise<string[]> {
  const { rows } = await db.query<{ agency_id: string }>("SELECT agency_id FROM agencies WHERE grading_authority");
  return rows.map((r) => r.agency_id);
}
