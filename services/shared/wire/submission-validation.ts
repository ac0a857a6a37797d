/**
 * Content rules for submissions, shared by every input channel.
 *
 * - `normaliseHash` turns one (alg, value, quality) into the canonical Hash form of DESIGN.md:
 *   md5/sha1/sha256/pdq lower-case hex; photodna standard padded base64 of 144 bytes. Each
 *   algorithm's form and normalisation is its entry in services/shared/wire/hash-algorithms.ts.
 * - `validateDraft` checks an unsigned draft (what the VICS and CSV readers build, before an agency
 *   signs it) and returns a normalised copy: hashes canonical, exact duplicates dropped.
 * - `validateSubmission` checks a signed submission. It never rewrites anything, since that would
 *   break the signature: hashes must already be canonical and may not repeat.
 *
 * Every failure is a ValidationError whose detail starts with the path of the offending field.
 *
 * Frozen contract: the force CLI applies the same rules before signing that the hub applies on
 * receipt, and forces build their tooling to them. Hash normalisation decides the bytes a force
 * signs, so it never changes for an existing algorithm. Tightening a rule turns submissions forces
 * already sign into rejections; relax freely, tighten only with a new Submission schema version in
 * schemas/history/ that the rule is tied to, announced to the forces first.
 */
import { ValidationError } from "../errors.ts";
import type { ReasonCode } from "../errors.ts";
import { ContentTypeValues, GradingStatusValues, IcsCategoryValues, SubmissionOpValues, UkCategoryValues } from "./records.ts";
import type { Grade, Hash, HashAlg, LawEnforcementMetadata, Submission } from "./records.ts";
import type { Unsigned } from "./signing.ts";
import { HASH_ALGORITHM_NAMES, QUALITY_ALGORITHMS, hashAlgorithm, isHashAlg } from "./hash-algorithms.ts";

/** What a contributing agency's tooling builds before it signs: agencyId, keyId and submittedAt come at signing time. */
export type SubmissionDraft = Omit<Unsigned<Submission>, "agencyId" | "keyId" | "submittedAt">;

export const SUBMISSION_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
/** A video may carry many frame hashes; more than this in one submission is refused. */
export const MAX_HASHES_PER_SUBMISSION = 4096;
/** Longest caseRef, series, graderRef, agencyId or keyId accepted. */
export const MAX_TEXT_LENGTH = 256;
/** How far ahead of the hub's clock submittedAt may be. */
export const MAX_FUTURE_SKEW_MS = 10 * 60 * 1000;
/** Earliest plausible submittedAt (2000-01-01): anything earlier is a unit mistake (seconds) or junk. */
export const MIN_SUBMITTED_AT = Date.UTC(2000, 0, 1);
export const PHOTODNA_BYTES = hashAlgorithm("photodna").bytes;
export const ED25519_SIGNATURE_BYTES = 64;

function fail(reason: ReasonCode, detail: string): never {
  throw new ValidationError(reason, detail);
}

function at(path: string, message: string): string {
  return path ? `${path}: ${message}` : message;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "string") return v.length > 40 ? `"${v.slice(0, 40)}…" (${v.length} chars)` : JSON.stringify(v);
  if (typeof v === "object") return "an object";
  return `${typeof v} ${String(v)}`;
}

function oneOf<T extends string>(values: readonly T[], v: unknown): v is T {
  return typeof v === "string" && (values as readonly string[]).includes(v);
}

// ---- hashes ---------------------------------------------------------------------------------

/**
 * The canonical Hash for one algorithm and value. Accepts upper-case hex (lowered) and
 * surrounding whitespace; PhotoDNA as base64 (standard or URL-safe) or as 288 hex characters.
 * Throws UNSUPPORTED_ALGORITHM for an unknown algorithm and INVALID_HASH for a bad value or quality.
 */
export function normaliseHash(alg: string, value: string, quality?: number | null): Hash {
  return normaliseHashAt(alg, value, quality, "");
}

/** Path of a hash's field; none for a bare normaliseHash call, whose messages need no path. */
function field(path: string, name: string): string {
  return path ? `${path}.${name}` : "";
}

function normaliseHashAt(alg: unknown, value: unknown, quality: unknown, path: string): Hash {
  if (typeof alg !== "string") fail("UNSUPPORTED_ALGORITHM", at(field(path, "alg"), `must be a string, got ${describe(alg)}`));
  const a = alg.trim().toLowerCase();
  if (!isHashAlg(a)) {
    fail(
      "UNSUPPORTED_ALGORITHM",
      at(field(path, "alg"), `unsupported hash algorithm ${describe(alg)} (expected one of ${HASH_ALGORITHM_NAMES.join(", ")})`),
    );
  }
  const entry = hashAlgorithm(a);
  if (typeof value !== "string") fail("INVALID_HASH", at(field(path, "value"), `${a} value must be a string, got ${describe(value)}`));
  const v = value.trim();

  let q: number | null = null;
  if (quality !== undefined && quality !== null) {
    const rule = entry.quality;
    if (!rule) fail("INVALID_HASH", at(field(path, "quality"), `quality applies only to ${QUALITY_ALGORITHMS.join(", ")}, not ${a}`));
    if (typeof quality !== "number" || !Number.isInteger(quality) || quality < rule.min || quality > rule.max) {
      const range = `${rule.min} to ${rule.max}`;
      fail("INVALID_HASH", at(field(path, "quality"), `${a} quality must be an integer from ${range}, got ${describe(quality)}`));
    }
    q = quality;
  }

  const n = entry.normalise(v);
  if (!n.ok) fail("INVALID_HASH", at(field(path, "value"), n.problem));
  return { alg: a, value: n.value, quality: q };
}

// ---- drafts and submissions -----------------------------------------------------------------

type Mode = "draft" | "signed";

/**
 * Checks a whole draft and returns a normalised copy (canonical hashes, exact duplicate hashes
 * dropped, optional grade and law-enforcement fields defaulted to null, blank texts to null).
 */
export function validateDraft(draft: SubmissionDraft): SubmissionDraft {
  return checkDraft(draft, "draft");
}

/**
 * Checks a signed submission as it arrived (JSON or Avro), without changing it.
 * `now` is the hub's clock, for the "not in the future" rule.
 */
export function validateSubmission(sub: Submission, now: Date | number = Date.now()): void {
  if (!isRecord(sub)) fail("INVALID_FIELD", `submission must be an object, got ${describe(sub)}`);
  checkIdentifier(sub.agencyId, "agencyId");
  checkIdentifier(sub.keyId, "keyId");
  const sig: unknown = sub.signature;
  if (!(sig instanceof Uint8Array)) fail("INVALID_FIELD", at("signature", `must be bytes, got ${describe(sig)}`));
  if (sig.length !== ED25519_SIGNATURE_BYTES) {
    fail("INVALID_FIELD", at("signature", `must be ${ED25519_SIGNATURE_BYTES} bytes (Ed25519), got ${sig.length}`));
  }
  checkSubmittedAt(sub.submittedAt, typeof now === "number" ? now : now.getTime());
  checkDraft(sub, "signed");
}

function checkIdentifier(v: unknown, path: string): void {
  if (typeof v !== "string" || v.trim() === "") fail("INVALID_FIELD", at(path, `must be a non-empty string, got ${describe(v)}`));
  if (v.length > MAX_TEXT_LENGTH) fail("INVALID_FIELD", at(path, `longer than ${MAX_TEXT_LENGTH} characters`));
  checkStorable(v, path);
}

/** U+0000, or a UTF-16 surrogate without its pair. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: U+0000 is what this pattern exists to find
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Free text must be storable (hostile input): PostgreSQL refuses U+0000 in text and
 * jsonb, and an unpaired surrogate in jsonb, so a caseRef of "\u0000" passed here and then
 * failed dedup's INSERT of the sighting on every redelivery (a poison message); in a plain text
 * column an unpaired surrogate would silently become U+FFFD.
 */
function checkStorable(v: string, path: string, reason: ReasonCode = "INVALID_FIELD"): void {
  const bad = UNSTORABLE.exec(v);
  if (bad) {
    const what = bad[0] === "\u0000" ? "U+0000" : `an unpaired surrogate U+${bad[0].charCodeAt(0).toString(16).toUpperCase()}`;
    fail(reason, at(path, `contains ${what} at position ${bad.index}`));
  }
}

function checkSubmittedAt(v: unknown, now: number): void {
  if (typeof v !== "number" || !Number.isSafeInteger(v)) {
    fail("INVALID_FIELD", at("submittedAt", `must be an integer of epoch milliseconds, got ${describe(v)}`));
  }
  if (v < MIN_SUBMITTED_AT) {
    const hint = v * 1000 >= MIN_SUBMITTED_AT && v * 1000 <= now + MAX_FUTURE_SKEW_MS ? " (looks like seconds, not milliseconds)" : "";
    fail("INVALID_FIELD", at("submittedAt", `${v} is before ${new Date(MIN_SUBMITTED_AT).toISOString()}${hint}`));
  }
  if (v > now + MAX_FUTURE_SKEW_MS) {
    // Past Date's range (8.64e15 ms) toISOString throws a RangeError: show the number.
    const when = Math.abs(v) <= 8.64e15 ? new Date(v).toISOString() : String(v);
    fail("INVALID_FIELD", at("submittedAt", `${when} is more than ${MAX_FUTURE_SKEW_MS / 60000} minutes in the future`));
  }
}

function checkDraft(draft: unknown, mode: Mode): SubmissionDraft {
  if (!isRecord(draft)) fail("INVALID_FIELD", `submission must be an object, got ${describe(draft)}`);
  const submissionId = draft.submissionId;
  if (typeof submissionId !== "string" || !SUBMISSION_ID_PATTERN.test(submissionId)) {
    fail("INVALID_FIELD", at("submissionId", `must be 1-128 characters of A-Z a-z 0-9 . _ : -, got ${describe(submissionId)}`));
  }
  const op = draft.op;
  if (!oneOf(SubmissionOpValues, op))
    fail("INVALID_FIELD", at("op", `must be one of ${SubmissionOpValues.join(", ")}, got ${describe(op)}`));
  const contentType = draft.contentType;
  if (!oneOf(ContentTypeValues, contentType)) {
    fail("INVALID_FIELD", at("contentType", `must be one of ${ContentTypeValues.join(", ")}, got ${describe(contentType)}`));
  }
  const hashes = checkHashes(draft.hashes, mode);
  const grade = checkGrade(draft.grade, mode);
  const gradingStatus = draft.gradingStatus;
  if (!oneOf(GradingStatusValues, gradingStatus)) {
    fail("INVALID_FIELD", at("gradingStatus", `must be one of ${GradingStatusValues.join(", ")}, got ${describe(gradingStatus)}`));
  }
  const lawEnforcement = checkLawEnforcement(draft.lawEnforcement, mode);
  return { submissionId, op, contentType, hashes, grade, gradingStatus, lawEnforcement };
}

function checkHashes(v: unknown, mode: Mode): Hash[] {
  if (!Array.isArray(v)) fail("INVALID_FIELD", at("hashes", `must be an array, got ${describe(v)}`));
  if (v.length === 0) fail("NO_HASHES", at("hashes", "at least one hash is required"));
  if (v.length > MAX_HASHES_PER_SUBMISSION) {
    fail("INVALID_FIELD", at("hashes", `at most ${MAX_HASHES_PER_SUBMISSION} hashes per submission, got ${v.length}`));
  }
  const out: Hash[] = [];
  const seen = new Map<string, number>();
  const exact = new Map<HashAlg, { value: string; index: number }>();
  for (let i = 0; i < v.length; i++) {
    const h: unknown = v[i];
    const path = `hashes[${i}]`;
    if (!isRecord(h)) fail("INVALID_HASH", at(path, `must be an object, got ${describe(h)}`));
    const n = normaliseHashAt(h.alg, h.value, h.quality, path);
    if (mode === "signed" && (n.alg !== h.alg || n.value !== h.value)) {
      fail(
        "INVALID_HASH",
        at(`${path}.value`, `not in canonical form (${n.alg} ${describe(n.value)}); a signed submission must carry canonical values`),
      );
    }
    const key = `${n.alg}:${n.value}`;
    const first = seen.get(key);
    if (first !== undefined) {
      if (mode === "signed") fail("INVALID_HASH", at(path, `repeats hashes[${first}]`));
      continue; // a draft just drops the repeat
    }
    // One image has exactly one digest per cryptographic algorithm; near ones may repeat (video frames, variants).
    if (hashAlgorithm(n.alg).match.kind === "exact") {
      const prior = exact.get(n.alg);
      if (prior) {
        fail(
          "INVALID_HASH",
          at(path, `a second, different ${n.alg} (hashes[${prior.index}] already gives one; one image has one ${n.alg})`),
        );
      }
      exact.set(n.alg, { value: n.value, index: i });
    }
    seen.set(key, i);
    out.push(n);
  }
  return out;
}

function checkGrade(v: unknown, mode: Mode): Grade {
  if (!isRecord(v)) fail("INVALID_CATEGORY", at("grade", `must be an object, got ${describe(v)}`));
  const uk = v.uk;
  if (!oneOf(UkCategoryValues, uk))
    fail("INVALID_CATEGORY", at("grade.uk", `must be one of ${UkCategoryValues.join(", ")}, got ${describe(uk)}`));
  const ics = v.ics ?? null;
  if (ics !== null && !oneOf(IcsCategoryValues, ics)) {
    fail("INVALID_CATEGORY", at("grade.ics", `must be null or one of ${IcsCategoryValues.join(", ")}, got ${describe(ics)}`));
  }
  if (mode === "signed" && v.ics === undefined) fail("INVALID_CATEGORY", at("grade.ics", "missing (use null)"));
  const vics = v.vics ?? null;
  if (mode === "signed" && v.vics === undefined) fail("INVALID_CATEGORY", at("grade.vics", "missing (use null)"));
  if (vics === null) return { uk, ics, vics: null };
  if (!isRecord(vics)) fail("INVALID_CATEGORY", at("grade.vics", `must be null or {profile, code}, got ${describe(vics)}`));
  const { profile, code } = vics;
  if (typeof profile !== "string" || profile.length === 0 || profile.length > 64) {
    fail("INVALID_CATEGORY", at("grade.vics.profile", `must be a string of 1-64 characters, got ${describe(profile)}`));
  }
  checkStorable(profile, "grade.vics.profile", "INVALID_CATEGORY");
  if (typeof code !== "number" || !Number.isInteger(code) || code < 0 || code > 0x7fffffff) {
    fail("INVALID_CATEGORY", at("grade.vics.code", `must be a non-negative integer, got ${describe(code)}`));
  }
  return { uk, ics, vics: { profile, code } };
}

const TEXT_FIELDS = ["caseRef", "series", "graderRef"] as const;
const FLAG_FIELDS = ["victimIdentified", "offenderIdentified", "isDistributed"] as const;

function checkLawEnforcement(v: unknown, mode: Mode): LawEnforcementMetadata {
  if (mode === "signed" && !isRecord(v)) fail("INVALID_FIELD", at("lawEnforcement", `must be an object, got ${describe(v)}`));
  if (v !== undefined && v !== null && !isRecord(v)) fail("INVALID_FIELD", at("lawEnforcement", `must be an object, got ${describe(v)}`));
  const src: Record<string, unknown> = v ?? {};
  const out: LawEnforcementMetadata = {
    caseRef: null,
    series: null,
    victimIdentified: null,
    offenderIdentified: null,
    isDistributed: null,
    graderRef: null,
  };
  for (const f of TEXT_FIELDS) {
    const x = src[f];
    if (x === undefined || x === null) {
      if (mode === "signed" && x === undefined) fail("INVALID_FIELD", at(`lawEnforcement.${f}`, "missing (use null)"));
      continue;
    }
    if (typeof x !== "string") fail("INVALID_FIELD", at(`lawEnforcement.${f}`, `must be null or a string, got ${describe(x)}`));
    if (x.length > MAX_TEXT_LENGTH) fail("INVALID_FIELD", at(`lawEnforcement.${f}`, `longer than ${MAX_TEXT_LENGTH} characters`));
    checkStorable(x, `lawEnforcement.${f}`);
    const t = mode === "draft" ? x.trim() : x;
    out[f] = t === "" && mode === "draft" ? null : t;
  }
  for (const f of FLAG_FIELDS) {
    const x = src[f];
    if (x === undefined || x === null) {
      if (mode === "signed" && x === undefined) fail("INVALID_FIELD", at(`lawEnforcement.${f}`, "missing (use null)"));
      continue;
    }
    if (typeof x !== "boolean") fail("INVALID_FIELD", at(`lawEnforcement.${f}`, `must be null or a boolean, got ${describe(x)}`));
    out[f] = x;
  }
  return out;
}
