/**
 * Accepted submissions that dedup dead-lettered as STALE_SUBMISSION because the same agency's newer
 * sighting of the same record was applied first. A force's two submissions in one batch can name
 * one record by two of its hashes (after a merge), so they carry different partition keys, and the
 * two dedup instances may apply them in either order. The engine keeps each agency's newest sighting
 * either way and still applies an older one's new hashes and merges, so it dead-letters only an older
 * submission that changes nothing: superseded, provided every cryptographic hash it carries is on a
 * record where that agency's sighting is newer. A stale one that carried a hash the hub does not hold
 * that way (a lost merge or hash) is not superseded and stays a difference.
 */
import type { Pool } from "../../services/shared/postgres.ts";
import { AvroCodec } from "../../services/shared/wire/codec.ts";
import type { Rejection } from "../../services/shared/wire/records.ts";

const codec = new AvroCodec();
const EXACT = new Set(["md5", "sha1", "sha256"]);

/** The rejections of superseded submissions, by submission id. */
export async function supersededSubmissions(
  hub: Pool,
  rejections: readonly Rejection[],
  accepted: ReadonlySet<string>,
): Promise<Set<string>> {
  const out = new Set<string>();
  for (const r of rejections) {
    if (r.reason !== "STALE_SUBMISSION" || r.service !== "dedup" || !r.submissionId || !accepted.has(r.submissionId)) continue;
    const sub = codec.decode("Submission", Buffer.from(r.originalBytes)).value;
    const exact = sub.hashes.filter((h) => EXACT.has(h.alg));
    let newerEverywhere = exact.length > 0;
    for (const h of exact) {
      const { rows } = await hub.query<{ n: string }>(
        `SELECT count(*)::text AS n FROM record_hashes rh JOIN sightings s ON s.record_id = rh.record_id
         WHERE rh.alg = $1 AND rh.value = $2 AND s.agency_id = $3 AND s.submitted_at > $4`,
        [h.alg, h.value, sub.agencyId, sub.submittedAt],
      );
      if (Number(rows[0]?.n) === 0) newerEverywhere = false;
    }
    if (newerEverywhere) out.add(sub.submissionId);
  }
  return out;
}
