/**
 * Pieces the file readers (VICS, CSV) share: the per-item result shape, byte sources, and the
 * lenient cell parsers (booleans, UK categories) that exports from forensic tools need.
 */
import { createHash } from "node:crypto";
import { HashrelayError, ValidationError } from "../../shared/errors.ts";
import type { ReasonCode } from "../../shared/errors.ts";
import { UkCategoryValues } from "../../shared/wire/records.ts";
import type { Hash, UkCategory } from "../../shared/wire/records.ts";
import type { SubmissionDraft } from "../../shared/wire/submission-validation.ts";

/**
 * A fault of the file as a whole (a VICS file that is truncated, not JSON, or not text in an
 * encoding the reader takes): reading stops there, so the items after it are missing.
 */
export interface FileFault {
  /** The file ends before its document does (cut off mid-item): the rest of the export is missing. */
  readonly truncated: boolean;
  /** Bytes of the file read when the fault was found (its size, for a truncated file). */
  readonly atByte: number;
  /** Media items complete before the fault (the fault is in item `completeItems`, counting from 0). */
  readonly completeItems: number;
  /**
   * True when the reader refused the file whole: it found the fault before yielding any item, and
   * yields only the fault. False when the complete items before the fault were yielded (a partial file).
   */
  readonly refusedWhole: boolean;
}

/** One media item / row of an input file: a draft ready to sign, or why not (with its bytes, for the DLQ). */
export type DraftItem =
  | {
      readonly index: number;
      readonly ok: true;
      readonly draft: SubmissionDraft;
      readonly original: Buffer;
      /** Hash names of the item the reader does not take (VICS AlternativeHashes outside the algorithm table). */
      readonly ignoredHashNames?: readonly string[];
    }
  | {
      readonly index: number;
      readonly ok: false;
      readonly reason: ReasonCode;
      readonly detail: string;
      readonly original: Buffer;
      /** Set on the item that stands for a fault of the whole file. */
      readonly fileFault?: FileFault;
    };

/** A file's bytes as they arrive: a Node stream, or any async iterable of chunks. */
export type ByteSource = AsyncIterable<Buffer | Uint8Array | string> | NodeJS.ReadableStream;

export interface FileReaderOptions {
  /**
   * Prefix of every submissionId the reader makes (1-96 characters of A-Z a-z 0-9 . _ : -), e.g.
   * "force-a:op-kite-2024-05:". It must be unique per file, since re-importing the same file must
   * give the same ids (idempotency) and two files must never share one.
   */
  readonly submissionIdPrefix: string;
}

/** Leaves room in the 128-character submissionId for a derived suffix (see derivedSubmissionId). */
export const MAX_PREFIX_LENGTH = 96;

export function checkPrefix(prefix: unknown): string {
  if (typeof prefix !== "string" || !/^[A-Za-z0-9._:-]+$/.test(prefix) || prefix.length > MAX_PREFIX_LENGTH) {
    throw new ValidationError(
      "INVALID_FIELD",
      `submissionIdPrefix: must be 1-${MAX_PREFIX_LENGTH} characters of A-Z a-z 0-9 . _ : -, got ${JSON.stringify(prefix)}`,
    );
  }
  return prefix;
}

/**
 * A stable id for an item that has no usable one of its own: the prefix, a tag and a digest of
 * `material` (32 hex digits, fewer, down to 16, when a long prefix leaves less room in the
 * 128-character id), so re-reading the same file gives the same ids.
 */
export function derivedSubmissionId(prefix: string, tag: string, material: string): string {
  const digits = Math.max(16, Math.min(32, 128 - prefix.length - tag.length - 1));
  return `${prefix}${tag}-${createHash("sha256").update(material).digest("hex").slice(0, digits)}`;
}

/** Material for derivedSubmissionId from the hashes, independent of their order. */
export function hashesMaterial(hashes: readonly Hash[]): string {
  return hashes
    .map((h) => `${h.alg}:${h.value.toLowerCase()}`)
    .sort()
    .join("\n");
}

/** The failed item for whatever a reader threw: ours carry a reason; anything else is a bug (INTERNAL). */
export function failedItem(index: number, err: unknown, original: Buffer): DraftItem {
  if (err instanceof HashrelayError) return { index, ok: false, reason: err.reason, detail: err.detail, original };
  return { index, ok: false, reason: "INTERNAL", detail: err instanceof Error ? err.message : String(err), original };
}

/** Chunks of a source as Buffers or strings, whichever the source gives. */
export async function* chunksOf(source: ByteSource): AsyncGenerator<Buffer | string, void, undefined> {
  for await (const chunk of source as AsyncIterable<Buffer | Uint8Array | string>) {
    if (typeof chunk === "string") yield chunk;
    else if (Buffer.isBuffer(chunk)) yield chunk;
    else yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  }
}

const TRUE_WORDS = new Set(["true", "1", "yes", "y", "t"]);
const FALSE_WORDS = new Set(["false", "0", "no", "n", "f"]);

/**
 * A flag as exporters write it: true/false, "true"/"True"/"TRUE", "1"/"0", 1/0, "yes"/"no".
 * null, undefined and "" mean unknown (null). Anything else is INVALID_FIELD.
 */
export function looseBoolean(v: unknown, field: string): boolean | null {
  if (v === undefined || v === null) return null;
  if (typeof v === "boolean") return v;
  if (v === 1 || v === 0) return v === 1;
  if (typeof v === "string") {
    const s = v.trim().toLowerCase();
    if (s === "") return null;
    if (TRUE_WORDS.has(s)) return true;
    if (FALSE_WORDS.has(s)) return false;
  }
  throw new ValidationError("INVALID_FIELD", `${field}: not a boolean: ${JSON.stringify(v)}`);
}

/**
 * A UK category as people write it: "A", "b", "Cat C", "Category A", or one of the enum names
 * (PROHIBITED_NONPHOTO, NON_INDECENT, UNGRADED; "-" or " " for "_" is fine). Empty means null.
 */
export function looseUkCategory(v: unknown, field: string): UkCategory | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== "string") throw new ValidationError("INVALID_CATEGORY", `${field}: UK category must be text, got ${JSON.stringify(v)}`);
  let s = v.trim().toUpperCase();
  if (s === "") return null;
  s = s.replace(/^(CATEGORY|CAT)[\s._-]*/, "").replace(/[\s-]+/g, "_");
  if ((UkCategoryValues as readonly string[]).includes(s)) return s as UkCategory;
  throw new ValidationError(
    "INVALID_CATEGORY",
    `${field}: ${JSON.stringify(v)} is not a UK category (expected ${UkCategoryValues.join(", ")})`,
  );
}
