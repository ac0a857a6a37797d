/**
 * AuditEvent construction shared by the services that write audit.v1 (DPA 2018 s.62 logging: who
 * did what to which record, when). An audit event never carries law-enforcement-only fields or
 * secrets: auditEvent() refuses a detail entry whose key names one, so a careless caller fails
 * loudly instead of leaking into the long-lived audit log.
 */
import { randomUUID } from "node:crypto";
import type { AvroCodec } from "./wire/codec.ts";
import type { AuditEvent } from "./wire/records.ts";
import type { TopicNames } from "./topics.ts";

/**
 * Law-enforcement-only fields (Submission and CanonicalRecord.restricted, and the extra fields
 * named after them), plus the contributing agencies, withheld from partners by default. An audit
 * detail may name them as values (e.g. which extra fields a policy grants), never carry them as keys.
 */
export const LAW_ENFORCEMENT_ONLY_FIELDS: readonly string[] = [
  "caseRef",
  "caseRefs",
  "series",
  "victimIdentified",
  "offenderIdentified",
  "isDistributed",
  "graderRef",
  "graderRefs",
  "restricted",
  "agencies",
];

/** Detail keys that would name a secret: private keys, passwords, HMAC secrets, signatures. */
const SECRET_KEY = /private|secret|password|passphrase|token|credential|signature|pem/i;

export interface AuditEventInput {
  readonly service: string;
  readonly actor: string;
  readonly action: string;
  readonly subjectKind: string;
  readonly subjectId: string;
  readonly revision?: number | null;
  readonly detail?: Readonly<Record<string, string>>;
  /** Epoch ms; now by default. */
  readonly at?: number;
}

/** Throws when a detail key names a law-enforcement-only field or a secret. */
export function assertAuditDetailSafe(detail: Readonly<Record<string, string>>): void {
  for (const key of Object.keys(detail)) {
    if (LAW_ENFORCEMENT_ONLY_FIELDS.includes(key)) throw new Error(`audit detail must not carry the law-enforcement-only field ${key}`);
    if (SECRET_KEY.test(key)) throw new Error(`audit detail must not carry a secret (${key})`);
  }
}

/** The checks every audit event passes, on its own or in a batch; returns its detail. */
function checkedDetail(input: AuditEventInput): Record<string, string> {
  const detail = { ...(input.detail ?? {}) };
  assertAuditDetailSafe(detail);
  for (const field of ["service", "actor", "action", "subjectKind", "subjectId"] as const) {
    if (!input[field]) throw new Error(`audit event needs a non-empty ${field}`);
  }
  return detail;
}

export function auditEvent(input: AuditEventInput): AuditEvent {
  const detail = checkedDetail(input);
  return {
    eventId: randomUUID(),
    at: input.at ?? Date.now(),
    service: input.service,
    actor: input.actor,
    action: input.action,
    subjectKind: input.subjectKind,
    subjectId: input.subjectId,
    revision: input.revision ?? null,
    detail,
  };
}

/** The audit.v1 message for an event, keyed by its subject (one subject's events stay in order). */
export function auditMessage(
  codec: AvroCodec,
  topics: Pick<TopicNames, "audit">,
  event: AuditEvent,
): { topic: string; key: string; value: Buffer } {
  return { topic: topics.audit, key: event.subjectId, value: codec.encode("AuditEvent", event) };
}

/**
 * The action of an event that carries several events of one service and transaction (ingest
 * writes one per request, dedup and distribution one per transaction): `detail.events` is a JSON array of
 * {actor, action, subjectKind, subjectId, revision, detail}; each shares the batch event's time
 * and service, and `detail.shared` (a JSON object) holds the detail entries all of them have with
 * the same value (a partner, a hub key, a cause), written once rather than in every event. expandAuditEvent() turns it back into those events.
 */
export const AUDIT_BATCH_ACTION = "audit.batch";
export const EVENTS_PER_BATCH = 500;

type BatchedEvent = Pick<AuditEvent, "actor" | "action" | "subjectKind" | "subjectId" | "revision" | "detail">;

/** Detail entries every event of a batch has with the same value: written once, in `shared`. */
function sharedDetail(events: readonly BatchedEvent[]): Record<string, string> {
  const [first, ...rest] = events;
  if (!first || rest.length === 0) return {};
  return Object.fromEntries(Object.entries(first.detail).filter(([k, v]) => rest.every((e) => e.detail[k] === v)));
}

/**
 * Events of one transaction as few audit.batch events (at most EVENTS_PER_BATCH each), keyed by
 * `key` (the subject of the batch event: e.g. the consumer group). Each event is checked as
 * auditEvent checks it.
 */
export function auditBatches(service: string, key: string, at: number, events: readonly AuditEventInput[]): AuditEvent[] {
  const batched: BatchedEvent[] = events.map((input) => ({
    actor: input.actor,
    action: input.action,
    subjectKind: input.subjectKind,
    subjectId: input.subjectId,
    revision: input.revision ?? null,
    detail: checkedDetail(input),
  }));
  const out: AuditEvent[] = [];
  for (let i = 0; i < batched.length; i += EVENTS_PER_BATCH) {
    const slice = batched.slice(i, i + EVENTS_PER_BATCH);
    const shared = sharedDetail(slice);
    const events = slice.map((b) => ({ ...b, detail: Object.fromEntries(Object.entries(b.detail).filter(([k]) => !(k in shared))) }));
    out.push(
      auditEvent({
        service,
        actor: service,
        action: AUDIT_BATCH_ACTION,
        subjectKind: "batch",
        subjectId: key,
        at,
        detail: { events: JSON.stringify(events), shared: JSON.stringify(shared), count: String(slice.length) },
      }),
    );
  }
  return out;
}

/** An event as operators read it: an audit.batch becomes the events it carries; any other is itself. */
export function expandAuditEvent(e: AuditEvent): AuditEvent[] {
  if (e.action === AUDIT_BATCH_ACTION) {
    const events = JSON.parse(e.detail["events"] ?? "[]") as BatchedEvent[];
    const shared = JSON.parse(e.detail["shared"] ?? "{}") as Record<string, string>;
    return events.map((b, i) => ({ ...b, detail: { ...shared, ...b.detail }, eventId: `${e.eventId}#${i}`, at: e.at, service: e.service }));
  }
  return [e];
}
