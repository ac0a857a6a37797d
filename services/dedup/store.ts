/**
 * PostgreSQL side of dedup: loads a batch's working set and writes back what changed. Records are
 * found by their exact hashes only (record_hashes_exact: one owner per exact value); perceptual
 * rows are one per carrying record and never used to find a record (perceptual-store.ts counts them).
 */
import type { PoolClient, Queryable } from "../shared/postgres.ts";
import type { ContentType, Hash, HashAlg, IcsCategory, LawEnforcementMetadata, UkCategory } from "../shared/wire/records.ts";
import { emptyWorkingSet, hashKey, isIdentity } from "./engine.ts";
import type { RecordState, Sighting, WorkingSet } from "./engine.ts";

export { emptyWorkingSet };

interface RecordRow {
  record_id: string;
  record_no: number;
  revision: number;
  deleted: boolean;
  merged_into: string | null;
  content_type: ContentType;
  near_duplicates: string[];
  first_seen_at: number;
  updated_at: number;
}

interface SightingRow {
  record_id: string;
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

/** Loads the records owning any of these hashes' exact values, following merges, with their hashes and sightings. */
export async function loadByHashes(client: PoolClient, ws: WorkingSet, hashes: readonly Pick<Hash, "alg" | "value">[]): Promise<void> {
  const wanted = hashes.filter((h) => isIdentity(h) && !ws.recordByHash.has(hashKey(h)));
  if (wanted.length === 0) return;
  const { rows } = await client.query<{ record_id: string }>(
    `SELECT DISTINCT h.record_id FROM record_hashes h
       JOIN unnest($1::text[], $2::text[]) AS w(alg, value) ON h.alg = w.alg AND h.value = w.value
      WHERE h.exact`,
    [wanted.map((h) => h.alg), wanted.map((h) => h.value)],
  );
  await loadRecords(
    client,
    ws,
    rows.map((r) => r.record_id),
  );
}

/** Loads records (and the records they were merged into) not yet in the working set. */
export async function loadRecords(client: PoolClient, ws: WorkingSet, recordIds: readonly string[]): Promise<void> {
  let pending = [...new Set(recordIds)].filter((id) => !ws.records.has(id));
  while (pending.length > 0) {
    const { rows } = await client.query<RecordRow>("SELECT * FROM canonical_records WHERE record_id = ANY($1::uuid[])", [pending]);
    const hashRows = await client.query<{ record_id: string; alg: HashAlg; value: string; quality: number | null }>(
      "SELECT record_id, alg, value, quality FROM record_hashes WHERE record_id = ANY($1::uuid[])",
      [pending],
    );
    const sightingRows = await client.query<SightingRow>("SELECT * FROM sightings WHERE record_id = ANY($1::uuid[])", [pending]);
    for (const r of rows) {
      ws.records.set(r.record_id, {
        recordId: r.record_id,
        recordNo: r.record_no,
        revision: r.revision,
        deleted: r.deleted,
        mergedInto: r.merged_into,
        contentType: r.content_type,
        hashes: new Map(),
        sightings: new Map(),
        nearDuplicates: new Set(r.near_duplicates),
        firstSeenAt: r.first_seen_at,
        updatedAt: r.updated_at,
        isNew: false,
        changed: false,
      });
    }
    for (const h of hashRows.rows) {
      const hash: Hash = { alg: h.alg, value: h.value, quality: h.quality };
      ws.records.get(h.record_id)?.hashes.set(hashKey(hash), hash);
      if (isIdentity(hash)) ws.recordByHash.set(hashKey(hash), h.record_id);
    }
    for (const s of sightingRows.rows) {
      const sighting: Sighting = {
        agencyId: s.agency_id,
        op: s.op,
        uk: s.uk,
        ics: s.ics,
        submittedAt: s.submitted_at,
        submissionId: s.submission_id,
        keyId: s.key_id,
        submitterStatus: s.submitter_status,
        restricted: s.restricted,
      };
      ws.records.get(s.record_id)?.sightings.set(s.agency_id, sighting);
    }
    pending = rows.map((r) => r.merged_into).filter((id): id is string => !!id && !ws.records.has(id));
  }
}

/** Writes every changed record, its hashes and its sightings. New records get their record_no. */
export async function writeChanges(client: PoolClient, ws: WorkingSet): Promise<RecordState[]> {
  const changed = [...ws.records.values()].filter((r) => r.changed);
  if (changed.length === 0) return changed;
  const fresh = changed.filter((r) => r.recordNo === null);
  if (fresh.length) {
    const { rows } = await client.query<{ n: number }>(
      "SELECT nextval(pg_get_serial_sequence('canonical_records', 'record_no')) AS n FROM generate_series(1, $1)",
      [fresh.length],
    );
    for (const [i, r] of fresh.entries()) r.recordNo = (rows[i] as { n: number }).n;
  }
  await client.query(
    `INSERT INTO canonical_records (record_id, record_no, revision, deleted, merged_into, content_type, near_duplicates, first_seen_at, updated_at)
     SELECT u.id, u.no, u.rev, u.del, u.merged, u.ct, ARRAY(SELECT jsonb_array_elements_text(u.near))::uuid[], u.first, u.upd
       FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::boolean[], $5::uuid[], $6::text[], $7::jsonb[], $8::bigint[], $9::bigint[])
         AS u(id, no, rev, del, merged, ct, near, first, upd)
     ON CONFLICT (record_id) DO UPDATE SET revision = EXCLUDED.revision, deleted = EXCLUDED.deleted,
       merged_into = EXCLUDED.merged_into, near_duplicates = EXCLUDED.near_duplicates,
       first_seen_at = EXCLUDED.first_seen_at, updated_at = EXCLUDED.updated_at`,
    [
      changed.map((r) => r.recordId),
      changed.map((r) => r.recordNo),
      changed.map((r) => r.revision),
      changed.map((r) => r.deleted),
      changed.map((r) => r.mergedInto),
      changed.map((r) => r.contentType),
      changed.map((r) => JSON.stringify([...r.nearDuplicates])),
      changed.map((r) => r.firstSeenAt),
      changed.map((r) => r.updatedAt),
    ],
  );
  await writeHashes(client, changed);
  await client.query("DELETE FROM sightings WHERE record_id = ANY($1::uuid[])", [changed.map((r) => r.recordId)]);
  const sightings = changed.flatMap((r) => [...r.sightings.values()].map((s) => ({ r, s })));
  if (sightings.length) {
    await client.query(
      `INSERT INTO sightings (record_id, agency_id, op, submission_id, key_id, uk, ics, submitter_status, restricted, submitted_at)
       SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::jsonb[], $10::bigint[])`,
      [
        sightings.map((x) => x.r.recordId),
        sightings.map((x) => x.s.agencyId),
        sightings.map((x) => x.s.op),
        sightings.map((x) => x.s.submissionId),
        sightings.map((x) => x.s.keyId),
        sightings.map((x) => x.s.uk),
        sightings.map((x) => x.s.ics),
        sightings.map((x) => x.s.submitterStatus),
        sightings.map((x) => JSON.stringify(x.s.restricted)),
        sightings.map((x) => x.s.submittedAt),
      ],
    );
  }
  return changed;
}

/** The changed records' hashes: exact ones move to their new owner, perceptual ones are one row per carrier. */
async function writeHashes(client: PoolClient, changed: readonly RecordState[]): Promise<void> {
  const all = changed.flatMap((r) => [...r.hashes.values()].map((h) => ({ r, h })));
  const exact = all.filter((x) => isIdentity(x.h));
  const perceptual = all.filter((x) => !isIdentity(x.h));
  const columns = (xs: typeof all) => [
    xs.map((x) => x.h.alg),
    xs.map((x) => x.h.value),
    xs.map((x) => x.r.recordId),
    xs.map((x) => x.h.quality),
  ];
  if (exact.length) {
    // A merge moves exact hashes: the owner changes, hash_seq stays.
    await client.query(
      `INSERT INTO record_hashes (alg, value, record_id, quality, exact)
       SELECT *, true FROM unnest($1::text[], $2::text[], $3::uuid[], $4::int[])
       ON CONFLICT (alg, value) WHERE exact DO UPDATE SET record_id = EXCLUDED.record_id
         WHERE record_hashes.record_id IS DISTINCT FROM EXCLUDED.record_id`,
      columns(exact),
    );
  }
  // A merge moves perceptual values too: the absorbed record's rows go, the survivor's are new rows
  // (a new hash_seq, so every instance's near-duplicate index learns the survivor carries them).
  await client.query(
    `DELETE FROM record_hashes h WHERE h.record_id = ANY($1::uuid[]) AND NOT h.exact
       AND NOT EXISTS (SELECT 1 FROM unnest($2::text[], $3::text[], $4::uuid[]) AS k(alg, value, record_id)
                        WHERE k.alg = h.alg AND k.value = h.value AND k.record_id = h.record_id)`,
    [changed.map((r) => r.recordId), ...columns(perceptual).slice(0, 3)],
  );
  if (perceptual.length) {
    await client.query(
      `INSERT INTO record_hashes (alg, value, record_id, quality, exact)
       SELECT *, false FROM unnest($1::text[], $2::text[], $3::uuid[], $4::int[])
       ON CONFLICT (alg, value, record_id) DO NOTHING`,
      columns(perceptual),
    );
  }
}

export interface OutboxMessage {
  readonly topic: string;
  readonly key: string | null;
  readonly value: Buffer;
}

export async function enqueueOutbox(client: PoolClient, messages: readonly OutboxMessage[]): Promise<void> {
  if (messages.length === 0) return;
  await client.query("INSERT INTO outbox (topic, message_key, message_value) SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[])", [
    messages.map((m) => m.topic),
    messages.map((m) => m.key),
    messages.map((m) => m.value),
  ]);
}

/** Of these submission ids, the ones already applied (a replay of one changes nothing). */
export async function appliedSubmissionIds(client: PoolClient, submissionIds: readonly string[]): Promise<Set<string>> {
  const { rows } = await client.query<{ submission_id: string }>(
    "SELECT submission_id FROM applied_submissions WHERE submission_id = ANY($1::text[])",
    [submissionIds],
  );
  return new Set(rows.map((r) => r.submission_id));
}

export interface AppliedSubmission {
  readonly submissionId: string;
  readonly agencyId: string;
  readonly keyId: string;
  /** SHA-256 of the signed bytes as received. */
  readonly digest: Buffer;
  readonly recordId: string | null;
}

/** Remembers the submissions a batch applied, so their replays are recognised. */
export async function recordAppliedSubmissions(client: PoolClient, applied: readonly AppliedSubmission[]): Promise<void> {
  if (!applied.length) return;
  await client.query(
    `INSERT INTO applied_submissions (submission_id, agency_id, key_id, digest, record_id)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::uuid[])`,
    [
      applied.map((a) => a.submissionId),
      applied.map((a) => a.agencyId),
      applied.map((a) => a.keyId),
      applied.map((a) => a.digest),
      applied.map((a) => a.recordId),
    ],
  );
}

/** Agencies the registry flags as grading authorities. */
export async function registeredGradingAuthorities(db: Queryable): Promise<string[]> {
  const { rows } = await db.query<{ agency_id: string }>("SELECT agency_id FROM agencies WHERE grading_authority");
  return rows.map((r) => r.agency_id);
}
