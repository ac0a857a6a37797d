/**
 * The JSON wire form of a signed Submission, as agencies POST it to /v1/submissions and write it
 * in JSON Lines import files. Field names are those of the Avro record (schemas/submission.avsc):
 *
 * ```json
 * { "submissionId": "…", "agencyId": "force-a", "keyId": "force-a:…", "op": "ASSERT",
 *   "contentType": "image",
 *   "hashes": [{ "alg": "md5", "value": "…" }, { "alg": "pdq", "value": "…", "quality": 90 }],
 *   "grade": { "uk": "A", "ics": "A1", "vics": { "profile": "vics-2.0", "code": 1 } },
 *   "gradingStatus": "indicative",
 *   "lawEnforcement": { "caseRef": "…", "isDistributed": true },
 *   "submittedAt": 1767225600000,
 *   "signature": "<base64 of 64 bytes>" }
 * ```
 *
 * Optional on the wire (absent means null): hashes[].quality, grade.ics, grade.vics,
 * lawEnforcement and each of its fields. Unknown fields are refused, since the signature would
 * not cover them and a misspelt optional field would otherwise vanish silently.
 *
 * Decoding here is structural only (types, enums, base64); the content rules (hash forms, id
 * pattern, clock) are validateSubmission's, which intake runs with its own clock.
 *
 * Frozen contract: forces and the force CLI write this JSON, and the hub verifies signatures over
 * the Avro bytes it decodes to. Renaming, retyping or newly requiring a field breaks every force
 * client; add an optional field together with a new Submission schema version in schemas/history/.
 */
import { HashrelayError, ValidationError } from "../errors.ts";
import type { ReasonCode } from "../errors.ts";
import {
  ContentTypeValues,
  GradingStatusValues,
  HashAlgValues,
  IcsCategoryValues,
  SubmissionOpValues,
  UkCategoryValues,
} from "./records.ts";
import type {
  ContentType,
  GradingStatus,
  Hash,
  HashAlg,
  IcsCategory,
  LawEnforcementMetadata,
  Submission,
  SubmissionOp,
  UkCategory,
  VicsCategory,
} from "./records.ts";

export interface HashJson {
  alg: HashAlg;
  value: string;
  quality?: number | null;
}

export interface GradeJson {
  uk: UkCategory;
  ics?: IcsCategory | null;
  vics?: VicsCategory | null;
}

export type LawEnforcementJson = { [K in keyof LawEnforcementMetadata]?: LawEnforcementMetadata[K] };

export interface SubmissionJson {
  submissionId: string;
  agencyId: string;
  keyId: string;
  op: SubmissionOp;
  contentType: ContentType;
  hashes: HashJson[];
  grade: GradeJson;
  gradingStatus: GradingStatus;
  lawEnforcement?: LawEnforcementJson | null;
  submittedAt: number;
  /** Standard base64 (URL-safe and unpadded are accepted on input). */
  signature: string;
}

/** One item of a POSTed body: the decoded submission, or why not; original is that item's exact bytes. */
export type SubmissionItem =
  | { readonly index: number; readonly ok: true; readonly submission: Submission; readonly original: Buffer }
  | { readonly index: number; readonly ok: false; readonly reason: ReasonCode; readonly detail: string; readonly original: Buffer };

// ---- decoding -------------------------------------------------------------------------------

function fail(reason: ReasonCode, path: string, message: string): never {
  throw new ValidationError(reason, `${path}: ${message}`);
}

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "string") return v.length > 40 ? `string "${v.slice(0, 40)}…"` : `string ${JSON.stringify(v)}`;
  if (typeof v === "object") return "an object";
  return `${typeof v} ${String(v)}`;
}

function join(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

/** The object at path, refusing keys outside `allowed`. */
function objectAt(v: unknown, path: string, allowed: readonly string[]): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v))
    fail("INVALID_FIELD", path || "submission", `must be an object, got ${typeName(v)}`);
  const obj = v as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) {
      fail("INVALID_FIELD", join(path, key), `unknown field (allowed here: ${allowed.join(", ")})`);
    }
  }
  return obj;
}

function has(obj: Record<string, unknown>, key: string): boolean {
  return Object.hasOwn(obj, key) && obj[key] !== undefined;
}

function requiredString(obj: Record<string, unknown>, key: string, path: string): string {
  const v = obj[key];
  if (!has(obj, key)) fail("INVALID_FIELD", join(path, key), "required");
  if (typeof v !== "string") fail("INVALID_FIELD", join(path, key), `must be a string, got ${typeName(v)}`);
  return v;
}

function optionalString(obj: Record<string, unknown>, key: string, path: string): string | null {
  const v = obj[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== "string") fail("INVALID_FIELD", join(path, key), `must be a string or null, got ${typeName(v)}`);
  return v;
}

function optionalBoolean(obj: Record<string, unknown>, key: string, path: string): boolean | null {
  const v = obj[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== "boolean") fail("INVALID_FIELD", join(path, key), `must be true, false or null, got ${typeName(v)}`);
  return v;
}

function requiredEnum<T extends string>(
  obj: Record<string, unknown>,
  key: string,
  path: string,
  values: readonly T[],
  reason: ReasonCode = "INVALID_FIELD",
): T {
  const v = requiredString(obj, key, path);
  if (!(values as readonly string[]).includes(v)) fail(reason, join(path, key), `must be one of ${values.join(", ")}, got ${typeName(v)}`);
  return v as T;
}

function requiredInteger(obj: Record<string, unknown>, key: string, path: string): number {
  const v = obj[key];
  if (!has(obj, key)) fail("INVALID_FIELD", join(path, key), "required");
  if (typeof v !== "number" || !Number.isSafeInteger(v)) fail("INVALID_FIELD", join(path, key), `must be an integer, got ${typeName(v)}`);
  return v;
}

/**
 * `v` without its trailing "=" padding. Not `v.replace(/=+$/, "")`: V8 retries that regex from
 * every "=" of a run that is not at the end, so a long run of "=" then one other character
 * takes time quadratic in its length (hostile input).
 */
function stripPadding(v: string): string {
  let end = v.length;
  while (end > 0 && v.charCodeAt(end - 1) === 0x3d) end--;
  return end === v.length ? v : v.slice(0, end);
}

function decodeBase64(v: string, path: string): Buffer {
  const unpadded = stripPadding(v);
  if (!/^[A-Za-z0-9+/_-]*$/.test(unpadded) || v.length - unpadded.length > 2 || unpadded.length % 4 === 1) {
    fail("INVALID_FIELD", path, "must be base64");
  }
  return Buffer.from(unpadded, "base64");
}

const SUBMISSION_KEYS = [
  "submissionId",
  "agencyId",
  "keyId",
  "op",
  "contentType",
  "hashes",
  "grade",
  "gradingStatus",
  "lawEnforcement",
  "submittedAt",
  "signature",
] as const;
const HASH_KEYS = ["alg", "value", "quality"] as const;
const GRADE_KEYS = ["uk", "ics", "vics"] as const;
const VICS_KEYS = ["profile", "code"] as const;
const LE_KEYS = ["caseRef", "series", "victimIdentified", "offenderIdentified", "isDistributed", "graderRef"] as const;

function decodeHash(v: unknown, path: string): Hash {
  const obj = objectAt(v, path, HASH_KEYS);
  const alg = requiredString(obj, "alg", path);
  if (!(HashAlgValues as readonly string[]).includes(alg)) {
    fail("UNSUPPORTED_ALGORITHM", join(path, "alg"), `must be one of ${HashAlgValues.join(", ")}, got ${typeName(alg)}`);
  }
  const value = requiredString(obj, "value", path);
  const q = obj["quality"];
  if (q !== undefined && q !== null && (typeof q !== "number" || !Number.isInteger(q))) {
    fail("INVALID_FIELD", join(path, "quality"), `must be an integer or null, got ${typeName(q)}`);
  }
  return { alg: alg as HashAlg, value, quality: (q as number | null | undefined) ?? null };
}

function decodeGrade(v: unknown, path: string): Submission["grade"] {
  const obj = objectAt(v, path, GRADE_KEYS);
  const uk = requiredEnum(obj, "uk", path, UkCategoryValues, "INVALID_CATEGORY");
  let ics: IcsCategory | null = null;
  if (obj["ics"] !== undefined && obj["ics"] !== null) ics = requiredEnum(obj, "ics", path, IcsCategoryValues, "INVALID_CATEGORY");
  let vics: VicsCategory | null = null;
  if (obj["vics"] !== undefined && obj["vics"] !== null) {
    const vp = join(path, "vics");
    const vo = objectAt(obj["vics"], vp, VICS_KEYS);
    vics = { profile: requiredString(vo, "profile", vp), code: requiredInteger(vo, "code", vp) };
  }
  return { uk, ics, vics };
}

function decodeLawEnforcement(v: unknown, path: string): LawEnforcementMetadata {
  if (v === undefined || v === null) {
    return { caseRef: null, series: null, victimIdentified: null, offenderIdentified: null, isDistributed: null, graderRef: null };
  }
  const obj = objectAt(v, path, LE_KEYS);
  return {
    caseRef: optionalString(obj, "caseRef", path),
    series: optionalString(obj, "series", path),
    victimIdentified: optionalBoolean(obj, "victimIdentified", path),
    offenderIdentified: optionalBoolean(obj, "offenderIdentified", path),
    isDistributed: optionalBoolean(obj, "isDistributed", path),
    graderRef: optionalString(obj, "graderRef", path),
  };
}

/**
 * A Submission from its JSON wire form (an already-parsed value, or JSON text as a string or
 * Buffer). Throws ValidationError: MALFORMED_JSON for text that is not JSON; INVALID_FIELD,
 * UNSUPPORTED_ALGORITHM or INVALID_CATEGORY with the path of the field, e.g.
 * "hashes[1].quality: must be an integer or null, got string \"90\"".
 */
export function submissionFromJson(obj: unknown): Submission {
  let value = obj;
  if (typeof obj === "string" || obj instanceof Uint8Array) {
    const text = typeof obj === "string" ? obj : Buffer.from(obj.buffer, obj.byteOffset, obj.byteLength).toString("utf8");
    try {
      value = JSON.parse(text.replace(/^\uFEFF/, ""));
    } catch (err) {
      throw new ValidationError("MALFORMED_JSON", `not JSON: ${(err as Error).message}`);
    }
  }
  const o = objectAt(value, "", SUBMISSION_KEYS);
  const hashesRaw = o["hashes"];
  if (!has(o, "hashes")) fail("INVALID_FIELD", "hashes", "required");
  if (!Array.isArray(hashesRaw)) fail("INVALID_FIELD", "hashes", `must be an array, got ${typeName(hashesRaw)}`);
  if (!has(o, "grade")) fail("INVALID_FIELD", "grade", "required");
  return {
    submissionId: requiredString(o, "submissionId", ""),
    agencyId: requiredString(o, "agencyId", ""),
    keyId: requiredString(o, "keyId", ""),
    op: requiredEnum(o, "op", "", SubmissionOpValues),
    contentType: requiredEnum(o, "contentType", "", ContentTypeValues),
    hashes: hashesRaw.map((h: unknown, i) => decodeHash(h, `hashes[${i}]`)),
    grade: decodeGrade(o["grade"], "grade"),
    gradingStatus: requiredEnum(o, "gradingStatus", "", GradingStatusValues),
    lawEnforcement: decodeLawEnforcement(o["lawEnforcement"], "lawEnforcement"),
    submittedAt: requiredInteger(o, "submittedAt", ""),
    signature: decodeBase64(requiredString(o, "signature", ""), "signature"),
  };
}

/** The JSON wire form of a Submission; nulls of optional fields are left out. Inverse of submissionFromJson. */
export function submissionToJson(sub: Submission): SubmissionJson {
  const grade: GradeJson = { uk: sub.grade.uk };
  if (sub.grade.ics !== null) grade.ics = sub.grade.ics;
  if (sub.grade.vics !== null) grade.vics = { profile: sub.grade.vics.profile, code: sub.grade.vics.code };
  const le: LawEnforcementJson = {};
  for (const key of LE_KEYS) {
    const v = sub.lawEnforcement[key];
    if (v !== null) (le as Record<string, unknown>)[key] = v;
  }
  const json: SubmissionJson = {
    submissionId: sub.submissionId,
    agencyId: sub.agencyId,
    keyId: sub.keyId,
    op: sub.op,
    contentType: sub.contentType,
    hashes: sub.hashes.map((h) =>
      h.quality === null ? { alg: h.alg, value: h.value } : { alg: h.alg, value: h.value, quality: h.quality },
    ),
    grade,
    gradingStatus: sub.gradingStatus,
    submittedAt: sub.submittedAt,
    signature: Buffer.from(sub.signature).toString("base64"),
  };
  if (Object.keys(le).length > 0) json.lawEnforcement = le;
  return json;
}

// ---- batches --------------------------------------------------------------------------------

function decodeItem(index: number, value: unknown, original: Buffer): SubmissionItem {
  try {
    return { index, ok: true, submission: submissionFromJson(value), original };
  } catch (err) {
    if (err instanceof HashrelayError) return { index, ok: false, reason: err.reason, detail: err.detail, original };
    return { index, ok: false, reason: "INTERNAL", detail: (err as Error).message, original };
  }
}

function isJsonSpace(c: number | undefined): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

/**
 * Exact byte ranges of the elements of a top-level JSON array (the first `max` of them at most).
 * `body` from `start` must already be known to be a valid JSON array. JSON's structural
 * characters are ASCII and never occur inside a UTF-8 multi-byte sequence, so scanning bytes is safe.
 */
function arrayElementSlices(body: Buffer, start: number, max: number): Buffer[] {
  const slices: Buffer[] = [];
  let i = start;
  while (isJsonSpace(body[i])) i++;
  if (body[i] !== 0x5b) return slices; // '['
  let depth = 0;
  let inString = false;
  let elemStart = -1;
  let lastNonSpace = -1;
  for (i++; i < body.length; i++) {
    const c = body[i] as number;
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped byte
      else if (c === 0x22) {
        inString = false;
        lastNonSpace = i;
      }
      continue;
    }
    if (isJsonSpace(c)) continue;
    if (depth === 0 && (c === 0x2c || c === 0x5d)) {
      // ',' or the closing ']'
      if (elemStart >= 0) slices.push(body.subarray(elemStart, lastNonSpace + 1));
      elemStart = -1;
      if (c === 0x5d || slices.length >= max) break;
      continue;
    }
    if (elemStart < 0) elemStart = i;
    if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) depth--;
    lastNonSpace = i;
  }
  return slices;
}

/**
 * Non-blank lines of body from start, without their terminators ("\n" or "\r\n"), with 1-based
 * line numbers; at most `max` of them, and where the rest begins (null when there is no rest).
 */
function linesOf(body: Buffer, start: number, max: number): { lines: { line: number; bytes: Buffer }[]; restAt: number | null } {
  const out: { line: number; bytes: Buffer }[] = [];
  let s = start;
  let n = 1;
  while (s <= body.length) {
    let e = body.indexOf(0x0a, s);
    if (e < 0) e = body.length;
    let end = e;
    if (end > s && body[end - 1] === 0x0d) end--;
    const bytes = body.subarray(s, end);
    if (bytes.some((b) => !isJsonSpace(b))) {
      if (out.length >= max) return { lines: out, restAt: s };
      out.push({ line: n, bytes });
    }
    n++;
    s = e + 1;
  }
  return { lines: out, restAt: null };
}

/**
 * Most items one body is split into (hostile input). Without a cap, a body within the size limit
 * but made of tiny items ("[0,0,0,…]") is split into millions of them, at a cost in time and heap
 * far beyond a real request's, before the HTTP layer can count the items and refuse them. Past the
 * cap, everything else is one BODY_TOO_LARGE item (original: the bytes from the first item not
 * read), so a caller that limits items per request (well below this) still sees more items than
 * it allows and refuses the body.
 */
const MAX_BATCH_ITEMS = 50_000;

function tooManyItems(index: number, rest: Buffer): SubmissionItem {
  return {
    index,
    ok: false,
    reason: "BODY_TOO_LARGE",
    detail: `more than ${MAX_BATCH_ITEMS} items in one body; the rest was not read`,
    original: rest,
  };
}

function parsesAsSubmissionObject(line: Buffer): boolean {
  try {
    const v: unknown = JSON.parse(line.toString("utf8"));
    return typeof v === "object" && v !== null && !Array.isArray(v) && ("submissionId" in v || "signature" in v);
  } catch {
    return false;
  }
}

/**
 * Splits a POSTed body into items: one JSON object, a JSON array of objects, or JSON Lines (one
 * object a line; blank lines ignored). Never throws. Each item's `original` is its exact bytes:
 * the whole body for a single object, the raw slice of the element for an array, the line
 * (without its terminator) for JSON Lines. A body that is none of these is one MALFORMED_JSON
 * item whose original is the whole body; a bad item never stops the good ones. Items are decoded
 * (submissionFromJson) but not yet validated: intake runs validateSubmission.
 *
 * JSON Lines is recognised when the body is not one JSON value, begins with "{", has two or more
 * non-blank lines and at least one of them is on its own a submission-like object; so a
 * truncated array or pretty-printed object stays one MALFORMED_JSON item, while a JSON Lines body
 * with a broken line still yields its good lines. `index` counts items (non-blank lines) from 0.
 * At most 50,000 items are read (MAX_BATCH_ITEMS); the rest of a bigger body is one more item,
 * BODY_TOO_LARGE, whose original is the bytes from the first item not read.
 */
export function parseSubmissionBatch(body: Buffer): SubmissionItem[] {
  const start = body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf ? 3 : 0;
  const text = body.toString("utf8", start);
  if (text.trim() === "") return [{ index: 0, ok: false, reason: "MALFORMED_JSON", detail: "empty body", original: body }];

  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    const { lines, restAt } = linesOf(body, start, MAX_BATCH_ITEMS);
    const looksLikeLines = text.trimStart().startsWith("{") && lines.length >= 2 && lines.some((l) => parsesAsSubmissionObject(l.bytes));
    if (!looksLikeLines) {
      return [
        {
          index: 0,
          ok: false,
          reason: "MALFORMED_JSON",
          detail: `body is not a JSON object, a JSON array or JSON Lines: ${(err as Error).message}`,
          original: body,
        },
      ];
    }
    const items = lines.map(({ line, bytes }, index): SubmissionItem => {
      let value: unknown;
      try {
        value = JSON.parse(bytes.toString("utf8"));
      } catch (lineErr) {
        return { index, ok: false, reason: "MALFORMED_JSON", detail: `line ${line}: ${(lineErr as Error).message}`, original: bytes };
      }
      return decodeItem(index, value, bytes);
    });
    if (restAt !== null) items.push(tooManyItems(items.length, body.subarray(restAt)));
    return items;
  }

  if (Array.isArray(parsed)) {
    const count = Math.min(parsed.length, MAX_BATCH_ITEMS);
    const slices = arrayElementSlices(body, start, count + 1);
    const items = parsed.slice(0, count).map((el: unknown, index) => {
      const original = slices.length >= count ? (slices[index] as Buffer) : Buffer.from(JSON.stringify(el));
      return decodeItem(index, el, original);
    });
    if (parsed.length > count) {
      const first = slices[count];
      items.push(tooManyItems(count, first ? body.subarray(first.byteOffset - body.byteOffset) : Buffer.alloc(0)));
    }
    return items;
  }
  if (typeof parsed !== "object" || parsed === null) {
    return [
      {
        index: 0,
        ok: false,
        reason: "INVALID_FIELD",
        detail: `body must be a submission object or an array of them, got ${typeName(parsed)}`,
        original: body,
      },
    ];
  }
  return [decodeItem(0, parsed, body)];
}
