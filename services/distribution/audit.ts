/**
 * Distribution's audit trail (audit.v1): every disclosure to a partner, i.e. every FeedRecord
 * issued (UPSERT or REMOVE), and every policy version applied to a partner's feed. The events are
 * queued in feed_outbox in the transaction that issues the records, so they are written exactly
 * when the records are, and relayed with them. The disclosures of a transaction travel in
 * audit.batch events (shared/audit.ts), not one Kafka message each: at a bulk load one per record
 * was as many outbox rows and messages as the feed records themselves. Pure builders only (store.ts
 * writes the rows); planner.ts stays unaware of auditing.
 *
 * A disclosure event names the hub's recordId (not the partner's pseudonym), the partner, the
 * feed position (partition, seq) and the algorithm; never the hash value, the extra fields' values
 * or anything law-enforcement-only: the feed record at that position holds what was sent.
 */
import { auditBatches, auditEvent, auditMessage } from "../shared/audit.ts";
import type { AuditEventInput } from "../shared/audit.ts";
import type { AvroCodec } from "../shared/wire/codec.ts";
import { servicePrincipal } from "../shared/kafka-access.ts";
import type { AuditEvent, FeedRecord } from "../shared/wire/records.ts";
import type { TopicNames } from "../shared/topics.ts";
import type { Delivery, PartnerPolicy } from "./policy.ts";
import type { OutboxMessage } from "./store.ts";

const SERVICE = "distribution";
/** Distribution acts as its Kafka principal. */
export const DISTRIBUTION_ACTOR = servicePrincipal("distribution");

/** One feed record issued to a partner, with the hub record it came from. */
export interface Disclosure {
  readonly record: FeedRecord;
  /** The hub's canonical recordId (FeedRecord.recordRef is only the partner's pseudonym of it). */
  readonly recordId: string;
  readonly delivery: Delivery;
}

/** Why records were issued: a canonical revision arrived, or a partner's policy was (re)applied. */
export type DisclosureCause = { readonly kind: "canonical" } | { readonly kind: "policy"; readonly version: number };

/** One disclosure, as the event operators read back (expandAuditEvent). */
export function disclosureEvent(d: Disclosure, cause: DisclosureCause): AuditEventInput {
  const r = d.record;
  const extraFields = Object.keys(r.extra).sort();
  return {
    service: SERVICE,
    actor: DISTRIBUTION_ACTOR,
    action: r.op === "UPSERT" ? "feed.upsert" : "feed.remove",
    subjectKind: "record",
    subjectId: d.recordId,
    revision: r.revision,
    detail: {
      partnerId: r.partnerId,
      partition: String(r.partition),
      seq: String(r.seq),
      alg: r.alg,
      delivery: d.delivery,
      keyId: r.keyId,
      cause: cause.kind === "canonical" ? "canonical" : `policy v${cause.version}`,
      ...(r.category !== null ? { category: r.category } : {}),
      // The names of the extra fields disclosed (their values stay out of the audit log).
      ...(extraFields.length ? { extraFields: extraFields.join(",") } : {}),
    },
  };
}

/** The audit events of the records issued in one transaction, in the order issued. */
export function disclosureEvents(issued: readonly Disclosure[], cause: DisclosureCause, at: number): AuditEvent[] {
  return auditBatches(
    SERVICE,
    DISTRIBUTION_ACTOR,
    at,
    issued.map((d) => disclosureEvent(d, cause)),
  );
}

export interface PolicyApplication {
  readonly policy: PartnerPolicy;
  /** The version reconciled before, or null when the partner's feed had none (new, or after a backfill). */
  readonly previousVersion: number | null;
  readonly recordsEvaluated: number;
  readonly upserts: number;
  readonly removes: number;
}

export function policyAppliedEvent(a: PolicyApplication, at: number): AuditEvent {
  const p = a.policy;
  return auditEvent({
    service: SERVICE,
    actor: DISTRIBUTION_ACTOR,
    action: "policy.applied",
    subjectKind: "policy",
    subjectId: p.partnerId,
    revision: p.version,
    at,
    detail: {
      version: String(p.version),
      previousVersion: a.previousVersion === null ? "none" : String(a.previousVersion),
      recordsEvaluated: String(a.recordsEvaluated),
      upserts: String(a.upserts),
      removes: String(a.removes),
      categories: p.categories.join(","),
      minGradingStatus: p.minGradingStatus,
      algorithms: p.algorithms.join(","),
      scheme: p.scheme,
      extraFields: p.extraFields.join(","),
      delivery: p.delivery,
    },
  });
}

/** Audit events as feed_outbox rows (no explicit partition), to queue in the transaction that issued the records. */
export function auditOutbox(codec: AvroCodec, topics: TopicNames, events: readonly AuditEvent[]): OutboxMessage[] {
  return events.map((e) => ({ ...auditMessage(codec, topics, e), partition: null }));
}
