/**
 * Reviews and feedback as operators see and decide them (`hashrelay review ...`): the open and
 * decided reviews, feedback counts per record (matches included: for operators, never for
 * partners), and recording the grading authority's decision, which distribution then applies
 * (feedback-processor.ts applyReviewDecisions).
 */
import { ValidationError } from "../shared/errors.ts";
import type { Queryable } from "../shared/postgres.ts";

export type ReviewState = "open" | "upheld" | "accepted";

export interface ReviewListing {
  readonly recordId: string;
  readonly state: ReviewState;
  readonly openedAt: Date;
  readonly openedRevision: number;
  /** The revision distribution holds now: above openedRevision once a correction has arrived. */
  readonly currentRevision: number;
  readonly reports: number;
  readonly decidedAt: Date | null;
  readonly decidedBy: string | null;
  readonly appliedAt: Date | null;
}

export async function listReviews(db: Queryable, state?: ReviewState): Promise<ReviewListing[]> {
  const { rows } = await db.query<{
    record_id: string;
    state: ReviewState;
    opened_at: Date;
    opened_revision: string;
    current_revision: string | null;
    reports: number;
    decided_at: Date | null;
    decided_by: string | null;
    applied_at: Date | null;
  }>(
    `SELECT r.record_id, r.state, r.opened_at, r.opened_revision, d.revision AS current_revision, r.reports, r.decided_at,
            r.decided_by, r.applied_at
       FROM record_reviews r LEFT JOIN distributed_records d USING (record_id)
      WHERE $1::text IS NULL OR r.state = $1 ORDER BY r.opened_at`,
    [state ?? null],
  );
  return rows.map((r) => ({
    recordId: r.record_id,
    state: r.state,
    openedAt: r.opened_at,
    openedRevision: Number(r.opened_revision),
    currentRevision: Number(r.current_revision ?? 0),
    reports: r.reports,
    decidedAt: r.decided_at,
    decidedBy: r.decided_by,
    appliedAt: r.applied_at,
  }));
}

/** The records under an open review (reconcile.ts expectedHoldings). */
export async function openReviews(db: Queryable): Promise<Set<string>> {
  const { rows } = await db.query<{ record_id: string }>("SELECT record_id FROM record_reviews WHERE state = 'open'");
  return new Set(rows.map((r) => r.record_id));
}

export interface ReviewDecisionInput {
  readonly recordId: string;
  readonly decision: "upheld" | "accepted";
  /** The grading authority (a registered agency with grading_authority) whose decision this is. */
  readonly authority: string;
  readonly note: string;
}

/**
 * Records the authority's decision on an open review. `accepted` means the report was right and
 * the record has been corrected through the normal revision path (the authority's RETRACT, or an
 * ASSERT with the corrected grade): it is refused until distribution holds a revision newer than
 * the one under review, so withheld partners never get the uncorrected record back in between.
 */
export async function decideReview(db: Queryable, d: ReviewDecisionInput): Promise<ReviewListing> {
  const { rowCount: isAuthority } = await db.query("SELECT 1 FROM agencies WHERE agency_id = $1 AND grading_authority", [d.authority]);
  if (!isAuthority) throw new ValidationError("INVALID_FIELD", `${d.authority} is not a registered grading authority`);
  const review = (await listReviews(db)).find((r) => r.recordId === d.recordId);
  if (!review) throw new ValidationError("NOT_FOUND", `record ${d.recordId} is not under review`);
  if (review.state !== "open")
    throw new ValidationError("INVALID_FIELD", `the review of ${d.recordId} was already decided (${review.state})`);
  if (d.decision === "accepted" && review.currentRevision <= review.openedRevision) {
    throw new ValidationError(
      "INVALID_FIELD",
      `record ${d.recordId} is still at revision ${review.currentRevision}, the one under review: ` +
        `have ${d.authority} submit the correction (RETRACT, or ASSERT with the corrected grade) first, then decide --accepted`,
    );
  }
  await db.query(
    `UPDATE record_reviews SET state = $2, decided_at = now(), decided_by = $3, decision_note = $4 WHERE record_id = $1 AND state = 'open'`,
    [d.recordId, d.decision, d.authority, d.note],
  );
  return { ...review, state: d.decision, decidedBy: d.authority, decidedAt: new Date() };
}

export interface FeedbackCounts {
  readonly recordId: string;
  readonly matches: number;
  readonly falsePositives: number;
  readonly notCsam: number;
  readonly partners: number;
}

/** Feedback per record, most matched first. */
export async function feedbackCounts(db: Queryable, limit: number): Promise<FeedbackCounts[]> {
  const { rows } = await db.query<{ record_id: string; matches: string; fp: string; not_csam: string; partners: string }>(
    `SELECT record_id,
            COALESCE(sum(match_count) FILTER (WHERE kind = 'MATCHED'), 0) AS matches,
            count(*) FILTER (WHERE kind = 'FALSE_POSITIVE') AS fp,
            count(*) FILTER (WHERE kind = 'NOT_CSAM_IN_OUR_JURISDICTION') AS not_csam,
            count(DISTINCT partner_id) AS partners
       FROM partner_feedback GROUP BY record_id ORDER BY 2 DESC, 3 DESC LIMIT $1`,
    [limit],
  );
  return rows.map((r) => ({
    recordId: r.record_id,
    matches: Number(r.matches),
    falsePositives: Number(r.fp),
    notCsam: Number(r.not_csam),
    partners: Number(r.partners),
  }));
}
