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

export function auditEvent(input: AuditEventInput): AuditEvent {
  const detail = { ...(input.detail ?? {}) };
  assertAuditDetailSafe(detail);
  for (const field of ["service", "actor", "action", "subjectKind", "subjectId"] as const) {
    if (!input[field]) throw new Error(`audit event needs a non-empty ${field}`);
  }
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
