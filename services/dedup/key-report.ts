/**
 * After a key is revoked, an operator needs to know which live records rest on that key alone:
 * those were asserted only by submissions signed with it, so their standing is in doubt.
 */
import type { Queryable } from "../shared/postgres.ts";

export interface KeyDependentRecord {
  readonly recordId: string;
  readonly hashes: number;
  readonly agencies: string[];
}

export async function recordsAssertedOnlyByKey(db: Queryable, keyId: string): Promise<KeyDependentRecord[]> {
  const { rows } = await db.query<{ record_id: string; hashes: number; agencies: string[] }>(
    `SELECT r.record_id,
            (SELECT count(*)::int FROM record_hashes h WHERE h.record_id = r.record_id) AS hashes,
            ARRAY(SELECT DISTINCT s.agency_id FROM sightings s WHERE s.record_id = r.record_id ORDER BY 1) AS agencies
       FROM canonical_records r
      WHERE NOT r.deleted
        AND EXISTS (SELECT 1 FROM sightings s WHERE s.record_id = r.record_id AND s.op = 'ASSERT' AND s.key_id = $1)
        AND NOT EXISTS (SELECT 1 FROM sightings s WHERE s.record_id = r.record_id AND s.op = 'ASSERT' AND s.key_id <> $1)
      ORDER BY r.record_id`,
    [keyId],
  );
  return rows.map((r) => ({ recordId: r.record_id, hashes: r.hashes, agencies: r.agencies }));
}
