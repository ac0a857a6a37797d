/**
 * PostgreSQL side of dedup's writes: everything a round changed, in one statement of
 * data-modifying CTEs: the changed canonical records (new ones get their record_no), their hashes
 * and sightings, the values that became degenerate and the recount of every degenerate value the
 * batch touched, the applied submission ids, and the outbox.
 *
 * The sub-statements see one snapshot and run in no set order, so none of them modifies a row
 * another one does: the rows a record no longer has are deleted and its current ones upserted (two
 * disjoint sets of rows, never a delete and an insert of one key); the recount updates stored
 * degenerate values and the new ones are inserted with their count, which is the snapshot's rows
 * minus the deleted plus the inserted ones. Foreign keys are checked at the end of the statement,
 * when the new canonical records exist.
 */
import { committedOutbox } from "../shared/outbox-relay.ts";
import type { CommittedOutbox } from "../shared/outbox-relay.ts";
import type { PoolClient } from "../shared/postgres.ts";
import { hashKey, isIdentity } from "./engine.ts";
import type { Degeneracy, RecordState, WorkingSet } from "./engine.ts";
import { namedStatement } from "./named-statement.ts";
import type { NearHashRow } from "./near-duplicate-store.ts";
import { bound } from "../shared/pg-arrays.ts";

export interface OutboxMessage {
  readonly topic: string;
  readonly key: string | null;
  readonly value: Buffer;
}

export interface AppliedSubmission {
  readonly submissionId: string;
  readonly agencyId: string;
  readonly keyId: string;
  /** SHA-256 of the signed bytes as received. */
  readonly digest: Buffer;
  readonly recordId: string | null;
}

export interface RoundWrite {
  /** Submissions the round applied, so their replays are recognised. */
  readonly applied: readonly AppliedSubmission[];
  /** In the order they are to be relayed. */
  readonly outbox: readonly OutboxMessage[];
}

const WRITE_ROUND = namedStatement(
  "dedup.write",
  `WITH
    records AS (
      INSERT INTO canonical_records (record_id, record_no, revision, deleted, merged_into, content_type, near_duplicates, first_seen_at, updated_at)
      SELECT u.id, coalesce(u.no, nextval(pg_get_serial_sequence('canonical_records', 'record_no'))), u.rev, u.del, u.merged, u.ct,
             ARRAY(SELECT jsonb_array_elements_text(u.near))::uuid[], u.first, u.upd
        FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::boolean[], $5::uuid[], $6::text[], $7::jsonb[], $8::bigint[], $9::bigint[])
          WITH ORDINALITY AS u(id, no, rev, del, merged, ct, near, first, upd, ord)
       ORDER BY u.ord
      ON CONFLICT (record_id) DO UPDATE SET revision = EXCLUDED.revision, deleted = EXCLUDED.deleted,
        merged_into = EXCLUDED.merged_into, near_duplicates = EXCLUDED.near_duplicates,
        first_seen_at = EXCLUDED.first_seen_at, updated_at = EXCLUDED.updated_at
      RETURNING record_id, record_no),
    exact AS (
      -- A merge moves exact hashes: the owner changes, hash_seq stays.
      INSERT INTO record_hashes (alg, value, record_id, quality, exact)
      SELECT *, true FROM unnest($10::text[], $11::text[], $12::uuid[], $13::int[])
      ON CONFLICT (alg, value) WHERE exact DO UPDATE SET record_id = EXCLUDED.record_id
        WHERE record_hashes.record_id IS DISTINCT FROM EXCLUDED.record_id),
    perceptual_gone AS (
      -- A merge moves perceptual values too: the absorbed record's rows go, the survivor's are new
      -- rows (a new hash_seq, so every instance's near-duplicate index learns the survivor carries them).
      DELETE FROM record_hashes h WHERE h.record_id = ANY($1::uuid[]) AND NOT h.exact
        AND NOT EXISTS (SELECT 1 FROM unnest($14::text[], $15::text[], $16::uuid[]) AS k(alg, value, record_id)
                         WHERE k.alg = h.alg AND k.value = h.value AND k.record_id = h.record_id)
      RETURNING h.alg, h.value),
    perceptual AS (
      INSERT INTO record_hashes (alg, value, record_id, quality, exact)
      SELECT *, false FROM unnest($14::text[], $15::text[], $16::uuid[], $17::int[])
      ON CONFLICT (alg, value, record_id) DO NOTHING
      RETURNING hash_seq, alg, value, quality, record_id),
    sightings_kept AS (
      INSERT INTO sightings (record_id, agency_id, op, submission_id, key_id, uk, ics, submitter_status, restricted, submitted_at)
      SELECT * FROM unnest($18::uuid[], $19::text[], $20::text[], $21::text[], $22::text[], $23::text[], $24::text[], $25::text[], $26::jsonb[], $27::bigint[])
      ON CONFLICT (record_id, agency_id) DO UPDATE SET op = EXCLUDED.op, submission_id = EXCLUDED.submission_id,
        key_id = EXCLUDED.key_id, uk = EXCLUDED.uk, ics = EXCLUDED.ics, submitter_status = EXCLUDED.submitter_status,
        restricted = EXCLUDED.restricted, submitted_at = EXCLUDED.submitted_at
        WHERE (sightings.op, sightings.submission_id, sightings.key_id, sightings.uk, sightings.ics, sightings.submitter_status,
               sightings.restricted, sightings.submitted_at)
          IS DISTINCT FROM (EXCLUDED.op, EXCLUDED.submission_id, EXCLUDED.key_id, EXCLUDED.uk, EXCLUDED.ics,
                            EXCLUDED.submitter_status, EXCLUDED.restricted, EXCLUDED.submitted_at)),
    sightings_gone AS (
      DELETE FROM sightings s WHERE s.record_id = ANY($1::uuid[])
        AND NOT EXISTS (SELECT 1 FROM unnest($18::uuid[], $19::text[]) AS k(record_id, agency_id)
                         WHERE k.record_id = s.record_id AND k.agency_id = s.agency_id)),
    carriers AS (
      SELECT w.alg, w.value,
             (SELECT count(*) FROM record_hashes h WHERE h.alg = w.alg AND h.value = w.value AND NOT h.exact)
             - (SELECT count(*) FROM perceptual_gone g WHERE g.alg = w.alg AND g.value = w.value)
             + (SELECT count(*) FROM perceptual p WHERE p.alg = w.alg AND p.value = w.value) AS records
        FROM unnest($28::text[], $29::text[]) AS w(alg, value)),
    degenerate_new AS (
      INSERT INTO degenerate_hashes (alg, value, reason, records, first_seen_at)
      SELECT f.alg, f.value, f.reason, c.records, f.first_seen_at
        FROM unnest($30::text[], $31::text[], $32::text[], $33::bigint[]) WITH ORDINALITY AS f(alg, value, reason, first_seen_at, ord)
        JOIN carriers c ON c.alg = f.alg AND c.value = f.value
       ORDER BY f.ord
      ON CONFLICT (alg, value) DO NOTHING),
    degenerate_recounted AS (
      UPDATE degenerate_hashes d SET records = c.records FROM carriers c
       WHERE d.alg = c.alg AND d.value = c.value AND d.records <> c.records),
    applied AS (
      INSERT INTO applied_submissions (submission_id, agency_id, key_id, digest, record_id)
      SELECT * FROM unnest($34::text[], $35::text[], $36::text[], $37::bytea[], $38::uuid[])),
    queued AS (
      INSERT INTO outbox (topic, message_key, message_value)
      SELECT u.topic, u.key, u.value FROM unnest($39::text[], $40::text[], $41::bytea[]) WITH ORDINALITY AS u(topic, key, value, ord)
       ORDER BY u.ord
      RETURNING id)
    SELECT coalesce(json_agg(json_build_object('hash_seq', p.hash_seq, 'alg', p.alg, 'value', p.value, 'quality', p.quality,
                                               'record_no', r.record_no)), '[]') AS inserted,
           (SELECT coalesce(json_agg(id ORDER BY id), '[]') FROM queued) AS outbox_ids,
           (SELECT coalesce(max(id), 0) FROM outbox) AS outbox_before
      FROM perceptual p JOIN records r USING (record_id)`,
);

type Column = unknown[];

function recordColumns(changed: readonly RecordState[]): Column[] {
  return [
    changed.map((r) => r.recordId),
    changed.map((r) => r.recordNo),
    changed.map((r) => r.revision),
    changed.map((r) => r.deleted),
    changed.map((r) => r.mergedInto),
    changed.map((r) => r.contentType),
    changed.map((r) => JSON.stringify([...r.nearDuplicates])),
    changed.map((r) => r.firstSeenAt),
    changed.map((r) => r.updatedAt),
  ];
}

/** Exact hashes move to their new owner; perceptual ones are one row per carrier. */
function hashColumns(changed: readonly RecordState[]): { exact: Column[]; perceptual: Column[] } {
  const all = changed.flatMap((r) => [...r.hashes.values()].map((h) => ({ r, h })));
  const columns = (xs: typeof all) => [
    xs.map((x) => x.h.alg),
    xs.map((x) => x.h.value),
    xs.map((x) => x.r.recordId),
    xs.map((x) => x.h.quality),
  ];
  return { exact: columns(all.filter((x) => isIdentity(x.h))), perceptual: columns(all.filter((x) => !isIdentity(x.h))) };
}

function sightingColumns(changed: readonly RecordState[]): Column[] {
  const sightings = changed.flatMap((r) => [...r.sightings.values()].map((s) => ({ r, s })));
  return [
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
  ];
}

/** Degenerate values the batch touched (their carriers were counted), and those of them new in this batch. */
function degenerateColumns(ws: WorkingSet): Column[] {
  const touched = [...ws.degenerate.values()].filter((d) => ws.perceptualStored.has(hashKey(d)));
  const fresh: Degeneracy[] = [...ws.degenerate.values()].filter((d) => d.isNew);
  return [
    touched.map((d) => d.alg),
    touched.map((d) => d.value),
    fresh.map((d) => d.alg),
    fresh.map((d) => d.value),
    fresh.map((d) => d.reason),
    fresh.map((d) => d.firstSeenAt),
  ];
}

/** What a round's write gives back. */
export interface RoundWritten {
  /** The perceptual rows it inserted, for the near-duplicate indexes. */
  readonly inserted: NearHashRow[];
  /** Its outbox rows with their ids, for the relay once committed (OutboxRelay.handOff). */
  readonly queued: CommittedOutbox;
}

/**
 * Writes what the round changed and queues its outbox, in one statement (none when there is
 * nothing to write). The outbox ids come back, with the highest id committed before them (the
 * statement's snapshot does not see its own rows), so the relay need not read the rows back.
 */
export async function writeRound(client: PoolClient, ws: WorkingSet, round: RoundWrite): Promise<RoundWritten> {
  const changed = [...ws.records.values()].filter((r) => r.changed);
  if (changed.length === 0 && round.applied.length === 0 && round.outbox.length === 0)
    return { inserted: [], queued: { before: 0, rows: [] } };
  const hashes = hashColumns(changed);
  const { rows } = await client.query<{ inserted: NearHashRow[]; outbox_ids: number[]; outbox_before: number }>(
    bound(WRITE_ROUND, [
      ...recordColumns(changed),
      ...hashes.exact,
      ...hashes.perceptual,
      ...sightingColumns(changed),
      ...degenerateColumns(ws),
      round.applied.map((a) => a.submissionId),
      round.applied.map((a) => a.agencyId),
      round.applied.map((a) => a.keyId),
      round.applied.map((a) => a.digest),
      round.applied.map((a) => a.recordId),
      round.outbox.map((m) => m.topic),
      round.outbox.map((m) => m.key),
      round.outbox.map((m) => m.value),
    ]),
  );
  return { inserted: rows[0]?.inserted ?? [], queued: committedOutbox("dedup round write", rows[0], round.outbox) };
}
