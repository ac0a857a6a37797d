/**
 * Distribution's audit trail (audit.v1): every disclosure to a partner, i.e. every FeedRecord
 * issued (UPSERT or REMOVE), and every policy version applied to a partner's feed. The events are
 * queued in feed_outbox in the transaction that issues the records, so they are written exactly
 * when the records are, and relayed with them. Pure builders besides enqueueAudit; planner.ts
 * stays unaware of auditing.
 *
 * The records one transaction issues to one feed partition are audited as one disclosure run
 * (shared/audit.ts DISCLOSURE_RUN_ACTION), not one event each: at a bulk load one event per record
 * was as many outbox rows and Kafka messages as the feed records themselves. Each record in a run
 * names the hub's recordId (not the partner's pseudonym), its seq and algorithm; never the hash
 * value, the extra fields' values or anything law-enforcement-only: the feed record at that
 * position holds what was sent.
 */
import { DISCLOSURES_PER_EVENT, DISCLOSURE_RUN_ACTION, auditEvent, auditMessage } from "../shared/audit.ts";
import type { DisclosedRecord } from "../shared/audit.ts";
import type { AvroCodec } from "../shared/wire/codec.ts";
import { servicePrincipal } from "../shared/kafka-access.ts";
import type { Queryable } from "../shared/postgres.ts";
import type { AuditEvent, FeedRecord } from "../shared/wire/records.ts";
import type { TopicNames } from "../shared/topics.ts";
import type { Delivery, PartnerPolicy } from "./policy.ts";

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

/**
 * The audit events of the records issued in one transaction: one disclosure run per feed
 * partition (in the order first issued), split every DISCLOSURES_PER_EVENT records.
 */
export function disclosureEvents(issued: readonly Disclosure[], cause: DisclosureCause, at: number): AuditEvent[] {
  const runs = new Map<string, Disclosure[]>();
  for (const d of issued) {
    const k = `${d.record.partnerId}/${d.record.partition}/${d.delivery}/${d.record.keyId}`;
    const run = runs.get(k) ?? [];
    if (!run.length) runs.set(k, run);
    run.push(d);
  }
  const events: AuditEvent[] = [];
  for (const run of runs.values()) {
    for (let i = 0; i < run.length; i += DISCLOSURES_PER_EVENT)
      events.push(disclosureRun(run.slice(i, i + DISCLOSURES_PER_EVENT), cause, at));
  }
  return events;
}

/** One run's event: records of one partner, partition, delivery and hub key. */
function disclosureRun(run: readonly Disclosure[], cause: DisclosureCause, at: number): AuditEvent {
  const first = (run[0] as Disclosure).record;
  const disclosures = run.map(({ record: r, recordId }): DisclosedRecord => {
    const extraFields = Object.keys(r.extra).sort();
    return {
      recordId,
      seq: r.seq,
      op: r.op,
      revision: r.revision,
      alg: r.alg,
      ...(r.category !== null ? { category: r.category } : {}),
      // The names of the extra fields disclosed (their values stay out of the audit log).
      ...(extraFields.length ? { extraFields: extraFields.join(",") } : {}),
    };
  });
  return auditEvent({
    service: SERVICE,
    actor: DISTRIBUTION_ACTOR,
    action: DISCLOSURE_RUN_ACTION,
    subjectKind: "feed",
    subjectId: `${first.partnerId}/${first.partition}`,
    at,
    detail: {
      partnerId: first.partnerId,
      partition: String(first.partition),
      firstSeq: String(first.seq),
      lastSeq: String((run[run.length - 1] as Disclosure).record.seq),
      records: String(run.length),
      delivery: (run[0] as Disclosure).delivery,
      keyId: first.keyId,
      cause: cause.kind === "canonical" ? "canonical" : `policy v${cause.version}`,
      disclosures: JSON.stringify(disclosures),
    },
  });
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

/** Queues audit events in feed_outbox (no explicit partition) inside the caller's transaction. */
export async function enqueueAudit(client: Queryable, codec: AvroCodec, topics: TopicNames, events: readonly AuditEvent[]): Promise<void> {
  if (!events.length) return;
  const messages = events.map((e) => auditMessage(codec, topics, e));
  await client.query(
    `INSERT INTO feed_outbox (topic, message_key, message_value) SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[])`,
    [messages.map((m) => m.topic), messages.map((m) => m.key), messages.map((m) => m.value)],
  );
}
