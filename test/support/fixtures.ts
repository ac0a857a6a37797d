/**
 * Synthetic records for tests and demos: random digests only, never real hash lists.
 */
import { randomBytes, randomUUID } from "node:crypto";
import type {
  Hash,
  Submission,
  FeedRecord,
  CanonicalRecord,
  Rejection,
  AuditEvent,
  PartnerFeedback,
} from "../../services/shared/wire/records.ts";
import type { Unsigned } from "../../services/shared/wire/signing.ts";
import type { PartnerPolicy } from "../../services/distribution/policy.ts";

export function randomHex(bytes: number): string {
  return randomBytes(bytes).toString("hex");
}

export function randomHashes(): Hash[] {
  return [
    { alg: "md5", value: randomHex(16), quality: null },
    { alg: "sha1", value: randomHex(20), quality: null },
    { alg: "pdq", value: randomHex(32), quality: 90 },
  ];
}

export function unsignedSubmission(overrides: Partial<Unsigned<Submission>> = {}): Unsigned<Submission> {
  return {
    submissionId: randomUUID(),
    agencyId: "force-a",
    keyId: "force-a:0000000000000000",
    op: "ASSERT",
    contentType: "image",
    hashes: randomHashes(),
    grade: { uk: "A", ics: "A1", vics: { profile: "uk", code: 1 } },
    gradingStatus: "indicative",
    lawEnforcement: {
      caseRef: "SYN-CASE-0001",
      series: null,
      victimIdentified: false,
      offenderIdentified: null,
      isDistributed: true,
      graderRef: "grader-7",
    },
    submittedAt: Date.now(),
    ...overrides,
  };
}

export function sampleCanonicalRecord(): CanonicalRecord {
  const now = Date.now();
  return {
    recordId: randomUUID(),
    revision: 3,
    deleted: false,
    mergedInto: null,
    contentType: "image",
    hashes: randomHashes(),
    classification: { uk: "B", ics: "B1" },
    gradingStatus: "confirmed",
    baseline: true,
    confirmations: 2,
    provenance: { agencies: ["force-a", "nca"], firstSeenAt: now - 1000 },
    restricted: {
      caseRefs: ["SYN-CASE-0001"],
      series: [],
      victimIdentified: null,
      offenderIdentified: null,
      isDistributed: true,
      graderRefs: [],
    },
    nearDuplicates: [],
    degenerate: [],
    updatedAt: now,
  };
}

export function sampleFeedRecord(): FeedRecord {
  return {
    partnerId: "partner-x",
    partition: 0,
    seq: 1,
    prevDigest: Buffer.alloc(32),
    op: "UPSERT",
    alg: "md5",
    value: randomHex(16),
    category: "A1",
    contentType: "image",
    revision: 1,
    recordRef: randomHex(16),
    extra: {},
    issuedAt: Date.now(),
    keyId: "hub:0000000000000000",
    signature: randomBytes(64),
  };
}

export function sampleRejection(): Rejection {
  return {
    rejectionId: randomUUID(),
    originalBytes: Buffer.from("{not json"),
    reason: "MALFORMED_JSON",
    detail: "Unexpected token",
    service: "ingest",
    channel: "http",
    agencyId: "force-a",
    submissionId: null,
    sourceTopic: null,
    sourcePartition: null,
    sourceOffset: null,
    rejectedAt: Date.now(),
  };
}

export function sampleAuditEvent(): AuditEvent {
  return {
    eventId: randomUUID(),
    at: Date.now(),
    service: "dedup",
    actor: "force-a",
    action: "record.created",
    subjectKind: "record",
    subjectId: randomUUID(),
    revision: 1,
    detail: { channel: "kafka" },
  };
}

/** A FALSE_POSITIVE about a random recordRef, with a placeholder (unverifiable) signature. */
export function samplePartnerFeedback(overrides: Partial<PartnerFeedback> = {}): PartnerFeedback {
  return {
    feedbackId: randomUUID(),
    partnerId: "hotline-uk",
    recordRef: randomHex(16),
    kind: "FALSE_POSITIVE",
    matchCount: null,
    timeBucket: null,
    reasonCode: "BENIGN_CONTENT",
    freeText: "synthetic note",
    sentAt: Date.now(),
    keyId: "hotline-uk:0000000000000000",
    signature: Buffer.alloc(64, 9),
    ...overrides,
  };
}

/** A UK hotline's policy: every indecent UK category, indicative or better, exact hashes, Kafka. */
export function hotlinePolicy(partnerId: string, overrides: Partial<PartnerPolicy> = {}): PartnerPolicy {
  const base: PartnerPolicy = {
    partnerId,
    categories: ["A", "B", "C"],
    minGradingStatus: "indicative",
    algorithms: ["md5", "sha1"],
    scheme: "uk",
    extraFields: [],
    delivery: "kafka",
    feedPartitions: 3,
    version: 1,
  };
  return { ...base, ...overrides };
}

/** An internet company's policy: confirmed A and B in the ICS scheme, md5 and PDQ, its grading status granted, Kafka. */
export function industryPolicy(partnerId: string, overrides: Partial<PartnerPolicy> = {}): PartnerPolicy {
  const base: PartnerPolicy = {
    partnerId,
    categories: ["A", "B"],
    minGradingStatus: "confirmed",
    algorithms: ["md5", "pdq"],
    scheme: "ics",
    extraFields: ["gradingStatus"],
    delivery: "kafka",
    feedPartitions: 2,
    version: 1,
  };
  return { ...base, ...overrides };
}

/** The UK-US taskforce: A to C, indicative or better, ICS scheme, every exact hash, S3 bundles. */
export function taskforcePolicy(partnerId: string, overrides: Partial<PartnerPolicy> = {}): PartnerPolicy {
  const base: PartnerPolicy = {
    partnerId,
    categories: ["A", "B", "C"],
    minGradingStatus: "indicative",
    algorithms: ["md5", "sha1", "sha256"],
    scheme: "ics",
    extraFields: [],
    delivery: "s3",
    feedPartitions: 1,
    version: 1,
  };
  return { ...base, ...overrides };
}
