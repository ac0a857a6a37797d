/**
 * Reason codes: the stable vocabulary every rejection, API error and DLQ entry uses.
 * Operators filter and re-drive by these, so never rename one; add new ones instead.
 */
export const REASON_CODES = [
  // transport / encoding
  "BAD_MAGIC",
  "UNKNOWN_SCHEMA",
  "MALFORMED_AVRO",
  "MALFORMED_JSON",
  "MALFORMED_CSV",
  "MALFORMED_VICS",
  "BODY_TOO_LARGE",
  "UNSUPPORTED_MEDIA_TYPE",
  // record content
  "INVALID_FIELD",
  "INVALID_HASH",
  "UNSUPPORTED_ALGORITHM",
  "INVALID_CATEGORY",
  "NO_HASHES",
  "DUPLICATE_SUBMISSION",
  "STALE_SUBMISSION",
  // trust
  "UNAUTHENTICATED",
  "AGENCY_MISMATCH",
  "UNKNOWN_KEY",
  "KEY_REVOKED",
  "KEY_EXPIRED",
  "KEY_NOT_YET_VALID",
  "KEY_OWNER_MISMATCH",
  "BAD_SIGNATURE",
  "REQUEST_REPLAYED",
  // feed verification (partner side)
  "SEQ_GAP",
  "SEQ_REORDER",
  "CHAIN_BROKEN",
  // partner feedback (hub side)
  "MISSING_SIGNATURE",
  "FEEDBACK_REPLAYED",
  "UNKNOWN_RECORD_REF",
  "FOREIGN_RECORD_REF",
  "PARTNER_MISMATCH",
  // configuration and infrastructure
  "CONFIG_INVALID",
  "NOT_FOUND",
  "INTERNAL",
  // operator actions recorded beside refusals (partner side: sink_alerts)
  "RESUMED",
  // operator console: a signed-in operator whose role does not allow the request
  "FORBIDDEN",
] as const;

export type ReasonCode = (typeof REASON_CODES)[number];

export function isReasonCode(value: string): value is ReasonCode {
  return (REASON_CODES as readonly string[]).includes(value);
}

/** Base of every error this product throws on purpose: it always carries a reason code. */
export class HashrelayError extends Error {
  readonly reason: ReasonCode;
  readonly detail: string;

  constructor(reason: ReasonCode, detail: string, options?: { cause?: unknown }) {
    super(`${reason}: ${detail}`, options);
    this.name = new.target.name;
    this.reason = reason;
    this.detail = detail;
  }
}

/** Bytes that are not a valid record of a known schema. */
export class CodecError extends HashrelayError {}

/** A record whose signature or key does not pass the trust rules. */
export class SignatureError extends HashrelayError {}

/** A record that decodes but breaks a content rule (hash form, category, ...). */
export class ValidationError extends HashrelayError {}

/** Start-up configuration that cannot work. */
export class ConfigError extends HashrelayError {
  constructor(detail: string) {
    super("CONFIG_INVALID", detail);
  }
}

/** Reason code of any thrown value: ours carry one, anything else is INTERNAL. */
export function reasonOf(err: unknown): ReasonCode {
  return err instanceof HashrelayError ? err.reason : "INTERNAL";
}
