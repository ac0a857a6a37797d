/**
 * The admin CLI's audit trail: each command that changes the hub (a key, a policy, an agency, a
 * partner, Kafka access, a DLQ re-drive) writes one AuditEvent to audit.v1, as the operator named
 * by --actor, through the admin principal. The builders are pure; writeAuditEvent sends one event
 * and says plainly when it could not.
 *
 * Details carry non-secret facts only: a key's public half and validity, never a private key; a
 * policy's grants by field name, never any record's values.
 */
import type { Kafka } from "kafkajs";
import { kafkaDefaultPartitioner } from "../shared/kafka-partitioner.ts";
import { auditEvent, auditMessage } from "../shared/audit.ts";
import type { AvroCodec } from "../shared/wire/codec.ts";
import type { RegisteredKey } from "../shared/key-registry.ts";
import type { AuditEvent } from "../shared/wire/records.ts";
import type { TopicNames } from "../shared/topics.ts";
import { WITHHELD_BY_DEFAULT } from "../distribution/policy.ts";
import type { PartnerPolicy } from "../distribution/policy.ts";
import type { Agency, Partner } from "./registry.ts";
import type { RedriveFilter, RedriveReport } from "./redrive.ts";

const SERVICE = "admin";

/** The operator recorded as the actor: --actor, else $USER, else "operator". */
export function defaultActor(env: NodeJS.ProcessEnv = process.env): string {
  return env["USER"] || "operator";
}

const iso = (d: Date | null): string => (d ? d.toISOString() : "open");

export function keyRegistered(actor: string, key: Omit<RegisteredKey, "revokedAt">): AuditEvent {
  return auditEvent({
    service: SERVICE,
    actor,
    action: "key.registered",
    subjectKind: "key",
    subjectId: key.keyId,
    detail: {
      ownerKind: key.ownerKind,
      ownerId: key.ownerId,
      publicKey: key.publicKey.toString("base64"),
      validFrom: iso(key.validFrom),
      validUntil: iso(key.validUntil),
    },
  });
}

export function keyRevoked(
  actor: string,
  keyId: string,
  reason: string,
  key: RegisteredKey | undefined,
  dependentRecords: number,
): AuditEvent {
  return auditEvent({
    service: SERVICE,
    actor,
    action: "key.revoked",
    subjectKind: "key",
    subjectId: keyId,
    detail: {
      reason,
      ...(key ? { ownerKind: key.ownerKind, ownerId: key.ownerId, revokedAt: iso(key.revokedAt) } : {}),
      dependentRecords: String(dependentRecords),
    },
  });
}

/** `approvedBy`: the second person who approved newly granted withheld-by-default extras, if any were. */
export function policySet(actor: string, policy: PartnerPolicy, approvedBy?: string): AuditEvent {
  const flagged = policy.extraFields.filter((f) => WITHHELD_BY_DEFAULT.includes(f));
  return auditEvent({
    service: SERVICE,
    actor,
    action: "policy.set",
    subjectKind: "policy",
    subjectId: policy.partnerId,
    revision: policy.version,
    detail: {
      version: String(policy.version),
      categories: policy.categories.join(","),
      minGradingStatus: policy.minGradingStatus,
      algorithms: policy.algorithms.join(","),
      scheme: policy.scheme,
      extraFields: policy.extraFields.join(","),
      // Names only: which withheld-by-default fields this policy now lets leave the hub.
      withheldFieldsGranted: flagged.join(","),
      delivery: policy.delivery,
      feedPartitions: String(policy.feedPartitions),
      withholdUnderReview: String(policy.withholdUnderReview === true),
      ...(approvedBy ? { approvedBy } : {}),
    },
  });
}

export function policySuspended(actor: string, partnerId: string, version: number, reason: string): AuditEvent {
  return auditEvent({
    service: SERVICE,
    actor,
    action: "policy.suspended",
    subjectKind: "policy",
    subjectId: partnerId,
    revision: version,
    detail: { version: String(version), reason },
  });
}

export function policyResumed(actor: string, partnerId: string, version: number): AuditEvent {
  return auditEvent({
    service: SERVICE,
    actor,
    action: "policy.resumed",
    subjectKind: "policy",
    subjectId: partnerId,
    revision: version,
    detail: { version: String(version) },
  });
}

export function agencyRegistered(actor: string, agency: Agency): AuditEvent {
  return auditEvent({
    service: SERVICE,
    actor,
    action: "agency.registered",
    subjectKind: "agency",
    subjectId: agency.agencyId,
    detail: { name: agency.name, kind: agency.kind, gradingAuthority: String(agency.gradingAuthority) },
  });
}

export function partnerRegistered(actor: string, partner: Partner): AuditEvent {
  return auditEvent({
    service: SERVICE,
    actor,
    action: "partner.registered",
    subjectKind: "partner",
    subjectId: partner.partnerId,
    detail: { name: partner.name },
  });
}

export function accessApplied(
  actor: string,
  a: { namespace: string; principals: readonly string[]; grants: number; partners: readonly string[]; agencies: readonly string[] },
): AuditEvent {
  return auditEvent({
    service: SERVICE,
    actor,
    action: "access.applied",
    subjectKind: "principal",
    subjectId: [...new Set(a.principals)].sort().join(","),
    detail: {
      namespace: a.namespace,
      grants: String(a.grants),
      partners: a.partners.join(","),
      producingAgencies: a.agencies.join(","),
    },
  });
}

export function accessRevoked(actor: string, principal: string, removed: number): AuditEvent {
  return auditEvent({
    service: SERVICE,
    actor,
    action: "access.revoked",
    subjectKind: "principal",
    subjectId: principal,
    detail: { aclsRemoved: String(removed) },
  });
}

export function dlqRedriven(actor: string, rejectedTopic: string, filter: RedriveFilter, report: RedriveReport): AuditEvent {
  return auditEvent({
    service: SERVICE,
    actor,
    action: "dlq.redriven",
    subjectKind: "dlq",
    subjectId: rejectedTopic,
    detail: {
      ...(filter.reason ? { reason: filter.reason } : {}),
      ...(filter.service ? { fromService: filter.service } : {}),
      ...(filter.agencyId ? { agencyId: filter.agencyId } : {}),
      ...(filter.since !== undefined ? { since: new Date(filter.since).toISOString() } : {}),
      matched: String(report.matched),
      republished: String(report.republished),
      readmittedAccepted: String(report.readmitted.accepted),
      readmittedDuplicates: String(report.readmitted.duplicates),
      readmittedRejected: String(report.readmitted.rejected),
      skipped: String(report.skipped),
    },
  });
}

/** The database change was made but its audit event could not be written: the CLI exits non-zero. */
export class AuditNotWrittenError extends Error {
  readonly topic: string;
  readonly event: AuditEvent;
  readonly failure: unknown;

  constructor(topic: string, event: AuditEvent, failure: unknown) {
    super(
      `the change above WAS made, but its audit event was NOT written to ${topic}: ${failure instanceof Error ? failure.message : String(failure)}. ` +
        `Check that Kafka is reachable and the topic exists (bin/hashrelay topics --namespace <ns>), then record this event: ${JSON.stringify(event)}`,
    );
    this.topic = topic;
    this.event = event;
    this.failure = failure;
  }
}

/** The change and its audit event are committed together, but Kafka has not taken the event yet: exit 3. */
export class AuditQueuedError extends Error {
  readonly topic: string;
  readonly event: AuditEvent;
  readonly failure: unknown;

  constructor(topic: string, event: AuditEvent, failure: unknown) {
    super(
      `the change above WAS made and its audit event (${event.action} ${event.subjectId}) is queued in the hub database, ` +
        `but it is NOT yet written to ${topic}: ${failure instanceof Error ? failure.message : String(failure)}. ` +
        `Once Kafka is reachable and the topic exists (bin/hashrelay topics --namespace <ns>), the next admin command or \`bin/hashrelay audit flush\` sends it.`,
    );
    this.topic = topic;
    this.event = event;
    this.failure = failure;
  }
}

/**
 * Sends messages in order, each acknowledged by every in-sync replica, giving up after `timeoutMs`
 * in all: an operator's command reports an unreachable broker in seconds.
 */
export async function sendAcknowledged(
  kafka: Kafka,
  messages: readonly { topic: string; key: string; value: Buffer }[],
  timeoutMs = 30_000,
): Promise<void> {
  const producer = kafka.producer({ allowAutoTopicCreation: false, createPartitioner: kafkaDefaultPartitioner });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      (async () => {
        await producer.connect();
        for (const m of messages) await producer.send({ topic: m.topic, acks: -1, messages: [{ key: m.key, value: m.value }] });
      })(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`Kafka did not acknowledge within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    await Promise.race([producer.disconnect().catch(() => undefined), new Promise((r) => setTimeout(r, 2_000).unref())]);
  }
}

/** Sends one audit event; throws AuditNotWrittenError when it cannot. */
export async function writeAuditEvent(
  kafka: Kafka,
  codec: AvroCodec,
  topics: Pick<TopicNames, "audit">,
  event: AuditEvent,
  timeoutMs = 30_000,
): Promise<void> {
  const message = auditMessage(codec, topics, event);
  try {
    await sendAcknowledged(kafka, [message], timeoutMs);
  } catch (err) {
    throw new AuditNotWrittenError(message.topic, event, err);
  }
}

/** A grading authority's decision on a false-positive review, recorded by an operator (the note stays in the hub database). */
export function reviewDecided(
  actor: string,
  recordId: string,
  decision: "upheld" | "accepted",
  authority: string,
  revision: number,
): AuditEvent {
  return auditEvent({
    service: SERVICE,
    actor,
    action: "review.decided",
    subjectKind: "record",
    subjectId: recordId,
    revision,
    detail: { decision, authority },
  });
}

/**
 * An operator consulted the hub about a hash in the console: one event per record found (or one
 * naming no record), so `audit list --subject <recordId>` shows who looked a record up. Never the
 * value looked up, only its algorithm(s).
 */
export function consoleLookup(actor: string, role: string, algs: readonly string[], recordIds: readonly string[]): AuditEvent[] {
  const detail = { role, algs: algs.join(","), records: String(recordIds.length) };
  if (recordIds.length === 0) {
    return [auditEvent({ service: SERVICE, actor, action: "console.lookup", subjectKind: "lookup", subjectId: "no-record", detail })];
  }
  return recordIds.map((id) =>
    auditEvent({ service: SERVICE, actor, action: "console.lookup", subjectKind: "record", subjectId: id, detail }),
  );
}
