/**
 * Streaming reader for hash lists in CSV, one SubmissionDraft per row.
 *
 * The first non-blank line is the header. Column names are matched case-insensitively (" " or
 * "-" may stand for "_"); the allowed ones are CSV_COLUMNS, any order, each at most once, at
 * least one hash column:
 *
 *   md5, sha1, sha256, pdq, pdq_quality, photodna   hashes (hex; photodna base64 or hex); empty = none
 *                   (one column per entry of the hash algorithm table, named after it, plus its
 *                   quality column where it has one)
 *   category        UK category: A, B, C, PROHIBITED_NONPHOTO, NON_INDECENT, UNGRADED ("Cat A" too);
 *                   empty = UNGRADED
 *   content_type    image | video; empty = image
 *   submission_id   used as given; empty = submissionIdPrefix + the row's line number
 *   case_ref, series   law-enforcement metadata; empty = null
 *
 * An unknown or repeated column fails the whole file: one MALFORMED_CSV item naming the allowed
 * columns, and nothing else is read. Rows are RFC 4180 fields separated by commas, quoted with
 * '"' ('""' inside quotes for a quote); a row is one line ("\n" or "\r\n"): a quoted field may
 * not span lines, so one broken row can never swallow the rows after it. A bad row (wrong
 * number of fields, broken quoting, bad hash, bad category...) yields a failed item whose
 * original is the row's exact bytes (without its line terminator), and reading goes on. Every
 * draft is an ASSERT with gradingStatus "indicative". Blank lines are skipped.
 */
import { ValidationError } from "../../shared/errors.ts";
import { ContentTypeValues } from "../../shared/wire/records.ts";
import type { ContentType, Hash, HashAlg } from "../../shared/wire/records.ts";
import { HASH_ALGORITHMS, HASH_ALGORITHM_NAMES } from "../../shared/wire/hash-algorithms.ts";
import { normaliseHash, validateDraft } from "../../shared/wire/submission-validation.ts";
import type { SubmissionDraft } from "../../shared/wire/submission-validation.ts";
import { checkPrefix, chunksOf, failedItem, looseUkCategory } from "./common.ts";
import type { ByteSource, DraftItem, FileReaderOptions } from "./common.ts";

/** Each hash algorithm's column (its name), followed by its quality column where it has one. */
const HASH_AND_QUALITY_COLUMNS: readonly string[] = HASH_ALGORITHMS.flatMap((a) => (a.quality ? [a.name, a.quality.csvColumn] : [a.name]));

export const CSV_COLUMNS: readonly string[] = [
  ...HASH_AND_QUALITY_COLUMNS,
  "category",
  "content_type",
  "submission_id",
  "case_ref",
  "series",
];

export type CsvColumn = (typeof CSV_COLUMNS)[number];

export interface CsvReaderOptions extends FileReaderOptions {
  /** Longest row accepted, in bytes; a longer one is a failed item (its original cut to this length). Default 64 KiB. */
  readonly maxLineBytes?: number;
}

const HASH_COLUMNS: readonly (CsvColumn & HashAlg)[] = HASH_ALGORITHM_NAMES;
const DEFAULT_MAX_LINE_BYTES = 64 * 1024;

interface Line {
  /** 1-based line number in the file. */
  readonly number: number;
  /** The line's bytes without "\n" / "\r\n" (cut to the limit when overlong). */
  readonly bytes: Buffer;
  readonly overlong: boolean;
}

/** Lines of a byte source, holding at most one (bounded) line at a time. */
async function* linesOf(source: ByteSource, maxLineBytes: number): AsyncGenerator<Line, void, undefined> {
  let parts: Buffer[] = [];
  let held = 0;
  let overlong = false;
  let number = 0;
  let first = true;

  const take = (piece: Buffer) => {
    if (overlong) return;
    if (held + piece.length > maxLineBytes) {
      overlong = true;
      piece = piece.subarray(0, maxLineBytes - held);
    }
    if (piece.length > 0) {
      parts.push(piece);
      held += piece.length;
    }
  };
  const finish = (): Line => {
    // A copy, so a kept original never pins a whole read chunk.
    let bytes = Buffer.concat(parts, held);
    if (!overlong && bytes.length > 0 && bytes[bytes.length - 1] === 0x0d) bytes = bytes.subarray(0, bytes.length - 1);
    if (first) {
      if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) bytes = bytes.subarray(3);
      first = false;
    }
    const line = { number: ++number, bytes, overlong };
    parts = [];
    held = 0;
    overlong = false;
    return line;
  };

  for await (const chunk of chunksOf(source)) {
    const buf = typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk;
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(0x0a, start);
      if (nl < 0) break;
      take(buf.subarray(start, nl));
      yield finish();
      start = nl + 1;
    }
    // Copy the partial line: a subarray would pin the whole chunk until the line ends.
    if (start < buf.length) take(Buffer.from(buf.subarray(start)));
  }
  if (held > 0 || overlong) yield finish();
}

function isBlank(bytes: Buffer): boolean {
  for (const b of bytes) if (b !== 0x20 && b !== 0x09 && b !== 0x0d) return false;
  return true;
}

function csvError(detail: string): ValidationError {
  return new ValidationError("MALFORMED_CSV", detail);
}

/** The fields of one CSV line (RFC 4180 quoting within the line); unquoted fields are trimmed. */
export function parseCsvLine(text: string): string[] {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    while (text[i] === " " || text[i] === "\t") i++;
    if (text[i] === '"') {
      let value = "";
      let j = i + 1;
      for (;;) {
        const q = text.indexOf('"', j);
        if (q < 0) throw csvError(`unterminated quoted field starting at column ${i + 1}`);
        value += text.slice(j, q);
        if (text[q + 1] === '"') {
          value += '"';
          j = q + 2;
          continue;
        }
        i = q + 1;
        break;
      }
      while (text[i] === " " || text[i] === "\t") i++;
      if (i < text.length && text[i] !== ",") {
        throw csvError(`unexpected ${JSON.stringify(text[i])} after a closing quote at column ${i + 1}`);
      }
      fields.push(value);
    } else {
      const comma = text.indexOf(",", i);
      const end = comma < 0 ? text.length : comma;
      const raw = text.slice(i, end);
      const quote = raw.indexOf('"');
      if (quote >= 0) throw csvError(`a quote inside an unquoted field at column ${i + quote + 1}`);
      fields.push(raw.trim());
      i = end;
    }
    if (i >= text.length) return fields;
    i++; // the comma
  }
}

function columnName(header: string): string {
  return header
    .trim()
    .toLowerCase()
    .replace(/[\s-]+/g, "_");
}

/** Column index by name, or the reason the header is refused. */
function readHeader(line: Line): Map<CsvColumn, number> {
  if (line.overlong) throw csvError(`line ${line.number}: header longer than the row limit`);
  const names = parseCsvLine(line.bytes.toString("utf8")).map(columnName);
  const columns = new Map<CsvColumn, number>();
  names.forEach((name, index) => {
    if (!(CSV_COLUMNS as readonly string[]).includes(name)) {
      throw csvError(`line ${line.number}: unknown column ${JSON.stringify(name)} (allowed: ${CSV_COLUMNS.join(", ")})`);
    }
    if (columns.has(name as CsvColumn)) throw csvError(`line ${line.number}: column ${JSON.stringify(name)} given twice`);
    columns.set(name as CsvColumn, index);
  });
  if (!HASH_COLUMNS.some((c) => columns.has(c))) {
    throw csvError(`line ${line.number}: no hash column (need at least one of ${HASH_COLUMNS.join(", ")})`);
  }
  return columns;
}

function rowToDraft(fields: string[], columns: Map<CsvColumn, number>, lineNumber: number, prefix: string): SubmissionDraft {
  const cell = (c: CsvColumn): string => {
    const i = columns.get(c);
    return i === undefined ? "" : (fields[i] ?? "").trim();
  };
  const within = (c: string, err: unknown): never => {
    if (err instanceof ValidationError) throw new ValidationError(err.reason, `${c}: ${err.detail}`);
    throw err;
  };

  const quality = new Map<HashAlg, number>();
  for (const a of HASH_ALGORITHMS) {
    if (!a.quality) continue;
    const column = a.quality.csvColumn;
    const q = cell(column);
    if (q === "") continue;
    if (!/^\d+$/.test(q)) {
      const range = `${a.quality.min} to ${a.quality.max}`;
      throw new ValidationError("INVALID_HASH", `${column}: must be an integer from ${range}, got ${JSON.stringify(q)}`);
    }
    if (cell(a.name) === "") throw new ValidationError("INVALID_HASH", `${column}: given without a ${a.name} hash`);
    quality.set(a.name, Number(q));
  }
  const hashes: Hash[] = [];
  for (const c of HASH_COLUMNS) {
    const v = cell(c);
    if (v === "") continue;
    try {
      hashes.push(normaliseHash(c, v, quality.get(c) ?? null));
    } catch (err) {
      within(c, err);
    }
  }
  if (hashes.length === 0) throw new ValidationError("NO_HASHES", "the row has no hash");

  const uk = looseUkCategory(cell("category"), "category") ?? "UNGRADED";
  const ct = cell("content_type").toLowerCase();
  if (ct !== "" && !(ContentTypeValues as readonly string[]).includes(ct)) {
    throw new ValidationError(
      "INVALID_FIELD",
      `content_type: must be ${ContentTypeValues.join(" or ")}, got ${JSON.stringify(cell("content_type"))}`,
    );
  }
  const contentType: ContentType = ct === "" ? "image" : (ct as ContentType);
  const id = cell("submission_id");

  try {
    return validateDraft({
      submissionId: id === "" ? `${prefix}${lineNumber}` : id,
      op: "ASSERT",
      contentType,
      hashes,
      grade: { uk, ics: null, vics: null },
      gradingStatus: "indicative",
      lawEnforcement: {
        caseRef: cell("case_ref") || null,
        series: cell("series") || null,
        victimIdentified: null,
        offenderIdentified: null,
        isDistributed: null,
        graderRef: null,
      },
    });
  } catch (err) {
    if (err instanceof ValidationError && err.detail.startsWith("submissionId:")) {
      throw new ValidationError(err.reason, `submission_id${err.detail.slice("submissionId".length)}`);
    }
    throw err;
  }
}

/**
 * Reads a CSV hash list as a stream of per-row results (see the module comment). Throws at once
 * (INVALID_FIELD) for a bad submissionIdPrefix; errors of the source itself propagate.
 */
export function readCsvDrafts(source: ByteSource, opts: CsvReaderOptions): AsyncGenerator<DraftItem, void, undefined> {
  const prefix = checkPrefix(opts.submissionIdPrefix);
  return read(source, prefix, opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES);
}

async function* read(source: ByteSource, prefix: string, maxLineBytes: number): AsyncGenerator<DraftItem, void, undefined> {
  let columns: Map<CsvColumn, number> | null = null;
  let index = 0;
  for await (const line of linesOf(source, maxLineBytes)) {
    if (isBlank(line.bytes) && !line.overlong) continue;
    if (columns === null) {
      try {
        columns = readHeader(line);
        continue;
      } catch (err) {
        yield failedItem(0, err, line.bytes);
        return;
      }
    }
    const i = index++;
    try {
      if (line.overlong) throw csvError(`longer than ${maxLineBytes} bytes`);
      const fields = parseCsvLine(line.bytes.toString("utf8"));
      if (fields.length !== columns.size) {
        throw csvError(`${fields.length} field${fields.length === 1 ? "" : "s"}, but the header has ${columns.size}`);
      }
      yield { index: i, ok: true, draft: rowToDraft(fields, columns, line.number, prefix), original: line.bytes };
    } catch (err) {
      const item = failedItem(i, err, line.bytes);
      yield item.ok ? item : { ...item, detail: `line ${line.number}: ${item.detail}` };
    }
  }
  if (columns === null) {
    yield { index: 0, ok: false, reason: "MALFORMED_CSV", detail: "empty file: no header row", original: Buffer.alloc(0) };
  }
}
