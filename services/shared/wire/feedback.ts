/**
 * Partner feedback (schemas/partner-feedback.avsc): its content rules and its Ed25519 signature.
 * The signature covers the domain tag "hashrelay/sig/v1/PartnerFeedback\n" followed by the Avro
 * encoding (writer schema) of every field but the trailing signature, as signing.ts does for
 * submissions and feed records; the tag of its own keeps a feedback signature from ever passing
 * as a submission's or a feed record's, and the body includes keyId, partnerId and recordRef.
 *
 * Frozen contract: partners sign these bytes and the hub verifies them (docs/partners.md, test
 * vector docs/vectors/partner-feedback.json). To change what is signed, add a new domain tag
 * (".../v2/...") and verify both; never change these bytes or rules in place.
 */
import { sign as edSign, verify as edVerify } from "node:crypto";
import type { KeyObject } from "node:crypto";
import avro from "avsc";
import { ValidationError } from "../errors.ts";
import type { FeedbackKind, PartnerFeedback } from "./records.ts";

export const FEEDBACK_SIGNING_DOMAIN = "hashrelay/sig/v1/PartnerFeedback\n";

/** Reasons a partner may give for a FALSE_POSITIVE. */
export const FALSE_POSITIVE_REASONS = ["BENIGN_CONTENT", "HASH_COLLISION", "WRONG_CATEGORY", "OTHER"] as const;
export type FalsePositiveReason = (typeof FALSE_POSITIVE_REASONS)[number];

export const FREE_TEXT_MAX = 1000;
/** More matches than this in one UTC day is not a count a partner reports: refused as a mistake. */
export const MATCH_COUNT_MAX = 1_000_000_000;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const PARTNER_ID = /^[a-z0-9][a-z0-9-]{1,62}$/;
/** recordRef is 32 lower-case hex (an HMAC the hub computes per partner). */
const RECORD_REF = /^[0-9a-f]{32}$/;
const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;

export type UnsignedFeedback = Omit<PartnerFeedback, "signature">;

/** The UTC day of a time, as timeBucket carries it. */
export function timeBucketOf(at: Date | number): string {
  return new Date(at).toISOString().slice(0, 10);
}

function isDay(value: string): boolean {
  const m = DAY.exec(value);
  return m !== null && timeBucketOf(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]))) === value;
}

function refuse(field: string, problem: string): never {
  throw new ValidationError("INVALID_FIELD", `feedback ${field} ${problem}`);
}

/** Fields that only some kinds carry: any other kind must leave them null. */
const KIND_FIELDS: Record<FeedbackKind, readonly ("matchCount" | "timeBucket" | "reasonCode" | "freeText")[]> = {
  MATCHED: ["matchCount", "timeBucket"],
  FALSE_POSITIVE: ["reasonCode", "freeText"],
  NOT_CSAM_IN_OUR_JURISDICTION: [],
};

/**
 * Throws a ValidationError (INVALID_FIELD) naming the first field that breaks the content rules:
 * ids in their forms, MATCHED with a count and a UTC day, FALSE_POSITIVE with a known reason and
 * bounded text, and no field a kind does not carry.
 */
export function validateFeedback(f: UnsignedFeedback): void {
  if (!UUID.test(f.feedbackId)) refuse("feedbackId", "must be a lower-case UUID");
  if (!PARTNER_ID.test(f.partnerId)) refuse("partnerId", "is not a partner id");
  if (!RECORD_REF.test(f.recordRef)) refuse("recordRef", "must be the 32 hex digits of a feed record's recordRef");
  if (!Number.isSafeInteger(f.sentAt) || f.sentAt <= 0) refuse("sentAt", "must be epoch milliseconds");
  if (!f.keyId) refuse("keyId", "is empty");
  const allowed = KIND_FIELDS[f.kind];
  for (const field of ["matchCount", "timeBucket", "reasonCode", "freeText"] as const) {
    if (!allowed.includes(field) && f[field] !== null) refuse(field, `is only for ${kindsWith(field)}; leave it null on ${f.kind}`);
  }
  if (f.kind === "MATCHED") {
    if (f.matchCount === null || !Number.isSafeInteger(f.matchCount) || f.matchCount < 1 || f.matchCount > MATCH_COUNT_MAX)
      refuse("matchCount", `must be a whole number from 1 to ${MATCH_COUNT_MAX} on MATCHED`);
    if (f.timeBucket === null || !isDay(f.timeBucket)) refuse("timeBucket", "must be a UTC day YYYY-MM-DD on MATCHED");
  }
  if (f.kind === "FALSE_POSITIVE") {
    if (f.reasonCode === null || !(FALSE_POSITIVE_REASONS as readonly string[]).includes(f.reasonCode))
      refuse("reasonCode", `must be one of ${FALSE_POSITIVE_REASONS.join(", ")} on FALSE_POSITIVE`);
    if (f.freeText !== null && f.freeText.length > FREE_TEXT_MAX) refuse("freeText", `exceeds ${FREE_TEXT_MAX} characters; shorten it`);
  }
}

function kindsWith(field: string): string {
  return Object.entries(KIND_FIELDS)
    .filter(([, fields]) => (fields as readonly string[]).includes(field))
    .map(([kind]) => kind)
    .join(", ");
}

const bodyTypes = new WeakMap<avro.Type, avro.Type>();

function bodyTypeOf(writerType: avro.Type): avro.Type {
  let body = bodyTypes.get(writerType);
  if (!body) {
    const schema = writerType.schema() as { name: string; fields: { name: string }[] } & Record<string, unknown>;
    if (schema.name !== "hashrelay.v1.PartnerFeedback" || schema.fields[schema.fields.length - 1]?.name !== "signature") {
      throw new Error(`${schema.name} is not a PartnerFeedback schema ending in its signature`);
    }
    body = avro.Type.forSchema({ ...schema, fields: schema.fields.slice(0, -1) } as avro.Schema);
    bodyTypes.set(writerType, body);
  }
  return body;
}

/** The exact bytes a feedback signature covers, for a record written with `writerType`. */
export function feedbackSigningBytes(writerType: avro.Type, feedback: UnsignedFeedback): Buffer {
  return Buffer.concat([Buffer.from(FEEDBACK_SIGNING_DOMAIN, "utf8"), bodyTypeOf(writerType).toBuffer(feedback)]);
}

export function signFeedback(writerType: avro.Type, unsigned: UnsignedFeedback, privateKey: KeyObject): PartnerFeedback {
  return { ...unsigned, signature: edSign(null, feedbackSigningBytes(writerType, unsigned), privateKey) };
}

/** Whether the record carries a signature at all (an unsigned one is refused as MISSING_SIGNATURE, not BAD_SIGNATURE). */
export const isSigned = (f: PartnerFeedback): boolean => Buffer.isBuffer(f.signature) && f.signature.length > 0;

/** True when the signature matches; whether the key may sign for this partner is key-registry.ts's rule. */
export function feedbackSignatureMatches(writerType: avro.Type, f: PartnerFeedback, publicKey: KeyObject): boolean {
  if (!Buffer.isBuffer(f.signature) || f.signature.length !== 64) return false;
  try {
    const { signature: _signature, ...unsigned } = f;
    return edVerify(null, feedbackSigningBytes(writerType, unsigned), publicKey, f.signature);
  } catch {
    return false;
  }
}
