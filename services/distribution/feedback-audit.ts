/**
 * Audit events of the feedback loop (audit.v1): each feedback accepted or refused, each review
 * opened or decided-and-applied. They name the hub record, the partner, the feedback id and kind;
 * never the partner's free text (kept in partner_feedback only) or anything law-enforcement-only.
 */
import type { AuditEventInput } from "../shared/audit.ts";
import type { ReasonCode } from "../shared/errors.ts";
import type { PartnerFeedback } from "../shared/wire/records.ts";
import { DISTRIBUTION_ACTOR } from "./audit.ts";

const SERVICE = "distribution";

export function feedbackReceived(f: PartnerFeedback, recordId: string, revision: number | null): AuditEventInput {
  return {
    service: SERVICE,
    actor: `partner:${f.partnerId}`,
    action: "feedback.received",
    subjectKind: "record",
    subjectId: recordId,
    revision,
    detail: {
      partnerId: f.partnerId,
      feedbackId: f.feedbackId,
      kind: f.kind,
      keyId: f.keyId,
      ...(f.matchCount !== null ? { matchCount: String(f.matchCount) } : {}),
      ...(f.timeBucket !== null ? { timeBucket: f.timeBucket } : {}),
      ...(f.reasonCode !== null ? { reasonCode: f.reasonCode } : {}),
    },
  };
}

/** A refused message, named by its position (what it claims to be may be a lie). */
export function feedbackRefused(
  partnerId: string,
  where: { topic: string; partition: number; offset: string },
  reason: ReasonCode,
  claimedFeedbackId: string | null,
): AuditEventInput {
  return {
    service: SERVICE,
    actor: DISTRIBUTION_ACTOR,
    action: "feedback.refused",
    subjectKind: "feedback",
    subjectId: claimedFeedbackId ?? `${where.topic}/${where.partition}/${where.offset}`,
    detail: { partnerId, reason, topic: where.topic, partition: String(where.partition), offset: where.offset },
  };
}

export function reviewOpened(f: PartnerFeedback, recordId: string, revision: number | null): AuditEventInput {
  return {
    service: SERVICE,
    actor: `partner:${f.partnerId}`,
    action: "review.opened",
    subjectKind: "record",
    subjectId: recordId,
    revision,
    detail: { partnerId: f.partnerId, feedbackId: f.feedbackId, reasonCode: f.reasonCode ?? "" },
  };
}

export function reviewApplied(recordId: string, state: "upheld" | "accepted", decidedBy: string, revision: number | null): AuditEventInput {
  return {
    service: SERVICE,
    actor: DISTRIBUTION_ACTOR,
    action: "review.applied",
    subjectKind: "record",
    subjectId: recordId,
    revision,
    detail: { state, decidedBy },
  };
}
