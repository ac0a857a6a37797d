/**
 * PostgreSQL side of partner feedback and reviews (migration 005): resolving a partner's recordRef
 * to the hub record, storing accepted feedback, opening reviews, and the decisions distribution
 * still has to apply. Statements run in the caller's transaction.
 */
import type { PoolClient, Queryable } from "../shared/postgres.ts";
import type { PartnerFeedback } from "../shared/wire/records.ts";

/** The hub record behind a partner's recordRef: its own, another partner's (refused), or none. */
export type RefResolution =
  | { readonly kind: "own"; readonly recordId: string }
  | { readonly kind: "foreign" }
  | { readonly kind: "unknown" };

export async function resolveRecordRef(tx: Queryable, partnerId: string, recordRef: string): Promise<RefResolution> {
  const { rows } = await tx.query<{ partner_id: string; record_id: string }>(
    "SELECT partner_id, record_id FROM disclosed_refs WHERE record_ref = $1",
    [recordRef],
  );
  const own = rows.find((r) => r.partner_id === partnerId);
  if (own) return { kind: "own", recordId: own.record_id };
  return rows.length ? { kind: "foreign" } : { kind: "unknown" };
}

/** Stores accepted feedback; false when its feedbackId is already stored (a replay). */
export async function storeFeedback(tx: PoolClient, f: PartnerFeedback, recordId: string, body: Buffer): Promise<boolean> {
  const { rowCount } = await tx.query(
    `INSERT INTO partner_feedback (feedback_id, partner_id, record_id, record_ref, kind, match_count, time_bucket, reason_code,
                                   free_text, key_id, sent_at, body)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, to_timestamp($11::double precision / 1000), $12)
     ON CONFLICT (feedback_id) DO NOTHING`,
    [
      f.feedbackId,
      f.partnerId,
      recordId,
      f.recordRef,
      f.kind,
      f.matchCount,
      f.timeBucket,
      f.reasonCode,
      f.freeText,
      f.keyId,
      f.sentAt,
      body,
    ],
  );
  return rowCount === 1;
}

export async function feedbackIdTaken(tx: Queryable, feedbackId: string): Promise<boolean> {
  const { rowCount } = await tx.query("SELECT 1 FROM partner_feedback WHERE feedback_id = $1", [feedbackId]);
  return Boolean(rowCount);
}

/**
 * A FALSE_POSITIVE about a record: opens its review, or counts one more report on an open one. A
 * decided review stays decided (the authority has answered; a new report is stored and counted
 * in partner_feedback for operators), so repeated reports cannot withdraw a record again and again.
 */
export async function reportFalsePositive(
  tx: PoolClient,
  recordId: string,
  feedbackId: string,
): Promise<"opened" | "reported" | "decided"> {
  const { rows } = await tx.query<{ state: string }>(
    `INSERT INTO record_reviews (record_id, state, opened_by, opened_revision)
     VALUES ($1, 'open', $2, COALESCE((SELECT revision FROM distributed_records WHERE record_id = $1), 0))
     ON CONFLICT (record_id) DO UPDATE SET reports = record_reviews.reports + 1 WHERE record_reviews.state = 'open'
     RETURNING (xmax = 0) AS inserted, state`,
    [recordId, feedbackId],
  );
  const row = rows[0] as { inserted?: boolean; state: string } | undefined;
  if (!row) return "decided";
  return row.inserted ? "opened" : "reported";
}

/** The stored canonical bodies of these records. */
export async function storedBodies(tx: Queryable, recordIds: readonly string[]): Promise<Buffer[]> {
  if (!recordIds.length) return [];
  const { rows } = await tx.query<{ body: Buffer }>("SELECT body FROM distributed_records WHERE record_id = ANY($1::uuid[])", [recordIds]);
  return rows.map((r) => r.body);
}

export interface ReviewDecision {
  readonly recordId: string;
  readonly state: "upheld" | "accepted";
  readonly decidedBy: string;
}

/** Decisions recorded by operators that distribution has not re-planned yet, row-locked; at most `limit`. */
export async function takeUnappliedDecisions(tx: PoolClient, limit: number): Promise<ReviewDecision[]> {
  const { rows } = await tx.query<{ record_id: string; state: "upheld" | "accepted"; decided_by: string }>(
    `SELECT record_id, state, decided_by FROM record_reviews WHERE state <> 'open' AND applied_at IS NULL
      ORDER BY decided_at LIMIT $1 FOR UPDATE SKIP LOCKED`,
    [limit],
  );
  return rows.map((r) => ({ recordId: r.record_id, state: r.state, decidedBy: r.decided_by }));
}

export async function markDecisionsApplied(tx: PoolClient, recordIds: readonly string[]): Promise<void> {
  if (recordIds.length) await tx.query("UPDATE record_reviews SET applied_at = now() WHERE record_id = ANY($1::uuid[])", [recordIds]);
}

/** One page of the (partner, record) pairs partners hold, in order, after `after`. */
export async function heldRecordsAfter(
  tx: Queryable,
  after: { partnerId: string; recordId: string },
  limit: number,
): Promise<{ partnerId: string; recordId: string }[]> {
  const { rows } = await tx.query<{ partner_id: string; record_id: string }>(
    `SELECT DISTINCT partner_id, record_id FROM feed_entries WHERE (partner_id, record_id) > ($1, $2::uuid)
      ORDER BY partner_id, record_id LIMIT $3`,
    [after.partnerId, after.recordId, limit],
  );
  return rows.map((r) => ({ partnerId: r.partner_id, recordId: r.record_id }));
}
