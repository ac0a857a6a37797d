/**
 * Streaming reader for VICS (Project VIC) JSON exports, as forensic tools write them, producing
 * one SubmissionDraft per media item. It never holds the file: a SAX-style tokenizer
 * (stream-json) feeds a small state machine that assembles one media object at a time, so a
 * multi-gigabyte export reads in bounded memory.
 *
 * Accepted shapes (property names are matched case-insensitively, ignoring "_", "-" and spaces):
 * - VICS 1.x: `{"odata.metadata": ".../DataModels/1.3.xml#Media", "value": [media...]}`
 * - VICS 2.0: `{"@odata.context": ".../DataModels/2.0.xml/...#Media", "value": [media...]}`
 * - either version in the Cases form: `{"…": "…#Cases", "value": [{"CaseID": …, "CaseNumber": …,
 *   "Media": [media...]}]}`. Case-level fields apply to the case's media (CaseNumber, else CaseID,
 *   becomes lawEnforcement.caseRef) wherever they stand in the case; ones after "Media" are seen
 *   only when the reader can read the file twice (below). A case that gives its CaseNumber or
 *   CaseID twice (the same key twice, or in two spellings) has each of its media items refused
 *   (INVALID_FIELD, naming the case), since their caseRef would be a guess.
 * The metadata/context property must come before "value" (OData requires it first); it decides
 * the vics profile kept on each grade: "vics-1.x" or "vics-2.0".
 *
 * The file is UTF-8 (a byte-order mark is skipped) or UTF-16 LE/BE with its byte-order mark
 * (text-decoding.ts); anything else is a file fault that names the encoding problem.
 *
 * Media fields read (vics-media.ts): MD5, SHA1, SHA256, PhotoDNA (base64 or hex), PDQ (+
 * PDQQuality), AlternativeHashes ([{HashName, HashValue}], names through the algorithm table;
 * unknown names ignored and reported on the item), Category, UKCategory / Category_UK,
 * MimeType / MediaType (video/* or "Video" makes the draft's contentType "video"), IsDistributed,
 * VictimIdentified, OffenderIdentified, Series, MediaID, Grader / GraderName. Everything else
 * (file names, paths, EXIF...) is ignored: the hub takes hashes and metadata only. Every draft is
 * an ASSERT with gradingStatus "indicative".
 *
 * Category mapping (VICS has no severity scale, so nothing is guessed towards A/B/C):
 *
 * | VICS Category                          | grade.uk            | grade.vics            |
 * |----------------------------------------|---------------------|-----------------------|
 * | null / absent / ""                     | UNGRADED            | null                  |
 * | 0 non-pertinent                        | NON_INDECENT        | {profile, code: 0}    |
 * | 1 CSAM (child abuse material)          | UNGRADED            | {profile, code: 1}    |
 * | 2 child exploitative / age difficult   | UNGRADED            | {profile, code: 2}    |
 * | 3 CGI / animation                      | PROHIBITED_NONPHOTO | {profile, code: 3}    |
 * | 4 comparison                           | NON_INDECENT        | {profile, code: 4}    |
 * | anything else                          | item rejected: INVALID_CATEGORY              |
 *
 * 1 and 2 need a UK grader for a severity. 3 is the UK prohibited-image class, but a
 * photo-realistic CGI image can be an indecent pseudo-photograph (A/B/C): the grade is only
 * indicative and the VICS code is kept so a grader can raise it. When the media carries a UK
 * category of its own (UKCategory, Category_UK...: A, B, C or an enum name) it wins for
 * grade.uk, and the VICS code is still kept.
 *
 * submissionId: prefix + MediaID (in the Cases form, media of the 2nd and later cases get
 * prefix + "c<case ordinal>." + MediaID, since MediaIDs may restart per case). A MediaID that
 * would make an invalid id (characters outside A-Z a-z 0-9 . _ : -, or too long) gives
 * prefix + "m-" + a digest of it; no MediaID gives prefix + "h-" + a digest of the item's
 * hashes. MediaIDs are taken to be unique within a file, as VICS defines them.
 *
 * Two ways to read. Given a stream, the reader makes one pass: results stream out in file order;
 * a bad media item yields a failed item and reading goes on; a file fault (bad syntax,
 * truncation, bad encoding, wrong shape, nesting deeper than 10,000 levels) yields one
 * MALFORMED_VICS item carrying a FileFault and stops, after the items before it (except those
 * completed within the fault's own 4 KiB slice of text, whose tokens the tokenizer drops when it
 * throws: see FEED_CHARS). Given a function that opens the source afresh (a file path's
 * createReadStream), it makes two: a scan that skips every media item in constant memory,
 * recording case-level fields that follow a Media array and finding any file fault, then the
 * items pass. A file fault found by the scan refuses the file whole (one item, FileFault
 * refusedWhole, nothing else yielded): an evidential export is all or nothing, unless `partial`
 * asks for the complete items before the fault (then yielded as in one pass).
 *
 * A media item larger than maxItemChars or nested deeper than 64 levels is one failed item
 * (MALFORMED_VICS, empty original) and reading goes on. The original of a media item is its JSON,
 * re-serialised; that of a file fault is the last few KiB of the file before it.
 */
import { getManyValues, isMany, none } from "stream-chain/defs.js";
import { jsonParser } from "stream-json/core/parser.js";
import type { Token } from "stream-json/core/parser.js";
import { ValidationError } from "../../shared/errors.ts";
import { checkPrefix } from "./common.ts";
import type { ByteSource, DraftItem, FileFault, FileReaderOptions } from "./common.ts";
import { TokenPacker } from "./streaming-json-assembler.ts";
import { decodedText, EncodingError } from "./text-decoding.ts";
import { VicsMachine } from "./vics-machine.ts";
import type { Pass } from "./vics-machine.ts";

export { VICS_TO_UK } from "./vics-media.ts";
export type { VicsProfile } from "./vics-media.ts";

export interface VicsReaderOptions extends FileReaderOptions {
  /** Largest media item (or case header), in characters of JSON; a bigger one is rejected. Default 1 MiB. */
  readonly maxItemChars?: number;
  /**
   * With a re-openable source: yield the complete items before a file fault (truncation...) instead
   * of refusing the file whole. Without one the reader makes one pass and is always partial.
   */
  readonly partial?: boolean;
}

/** A stream of the file's bytes, or a function that opens one afresh each time it is called (two passes). */
export type VicsSource = ByteSource | (() => ByteSource);

const DEFAULT_MAX_ITEM_CHARS = 1 << 20;
const TAIL_BYTES = 4096;
/**
 * Most characters handed to the tokenizer at once, so that:
 * - the items one source chunk makes are yielded in batches, however large the chunk (a source
 *   chunk of millions of tiny failed items would otherwise all be held before the first is yielded);
 * - a syntax error loses at most the items completed within its own slice: the tokenizer throws
 *   away the tokens of the call that fails, which with a whole source chunk per call would be
 *   every item of that chunk, neither yielded nor rejected.
 */
const FEED_CHARS = 4096;

/** A pass's file fault: the item that stands for it, with what the FileFault needs. */
interface PassFault {
  readonly item: Extract<DraftItem, { ok: false }>;
  readonly truncated: boolean;
  readonly atByte: number;
  readonly completeItems: number;
}

/**
 * Reads a VICS JSON export as a stream of per-media results (see the module comment).
 * Throws at once (INVALID_FIELD) for a bad submissionIdPrefix; errors of the source itself
 * (an I/O failure) propagate from the iteration; everything about the content is an item.
 */
export function readVicsDrafts(source: VicsSource, opts: VicsReaderOptions): AsyncGenerator<DraftItem, void, undefined> {
  const prefix = checkPrefix(opts.submissionIdPrefix);
  const limit = opts.maxItemChars ?? DEFAULT_MAX_ITEM_CHARS;
  return typeof source === "function" ? readTwice(source, prefix, limit, opts.partial ?? false) : readOnce(source, prefix, limit);
}

async function* readOnce(source: ByteSource, prefix: string, limit: number): AsyncGenerator<DraftItem, void, undefined> {
  const fault = yield* pass(source, new VicsMachine(prefix, limit, { kind: "items", lateCaseRefs: new Map() }));
  if (fault) yield withFault(fault, false, "");
}

async function* readTwice(
  open: () => ByteSource,
  prefix: string,
  limit: number,
  partial: boolean,
): AsyncGenerator<DraftItem, void, undefined> {
  const scan = new VicsMachine(prefix, limit, { kind: "scan" });
  const found = yield* pass(open(), scan);
  if (found && (!partial || scan.lateCaseLimit)) {
    const none = found.completeItems === 0 ? "" : `; none of its ${found.completeItems} complete media items is read`;
    yield withFault({ ...found, item: { ...found.item, index: 0 } }, true, `; the file is refused whole${none}`);
    return;
  }
  const items: Pass = { kind: "items", lateCaseRefs: scan.lateCaseRefs };
  const fault = yield* pass(open(), new VicsMachine(prefix, limit, items));
  if (fault) yield withFault(fault, false, found ? "" : " (the file changed while it was read: the first of two passes found no fault)");
}

function withFault(f: PassFault, refusedWhole: boolean, more: string): DraftItem {
  const fileFault: FileFault = { truncated: f.truncated, atByte: f.atByte, completeItems: f.completeItems, refusedWhole };
  return { ...f.item, detail: f.item.detail + more, fileFault };
}

/** One pass over the source: yields what `machine` makes (nothing in a scan) and returns the file fault, if any. */
async function* pass(source: ByteSource, machine: VicsMachine): AsyncGenerator<DraftItem, PassFault | null, undefined> {
  // Streamed, not packed, so TokenPacker can bound every key, string and number (see TokenPacker).
  const tokenize = jsonParser({ packValues: false, streamValues: true });
  const limit = machine.limit;
  const packer = new TokenPacker(Number.isNaN(limit) ? Infinity : Math.max(0, limit) + 1); // NaN means no limit
  let previous: Buffer = Buffer.alloc(0);
  let latest: Buffer = Buffer.alloc(0);
  let bytesRead = 0;

  /** Feeds text, or the end; returns the fault, if any, and whether the file ended before its document (truncated). */
  const feed = (input: string | typeof none): { err: unknown; atEnd: boolean } | null => {
    let tokens: unknown;
    try {
      tokens = (tokenize as unknown as (v: string | typeof none) => unknown)(input);
    } catch (err) {
      // At the end the tokenizer fails for a document left open: the file was cut off. (It holds back the
      // last few characters while a literal or escape could still complete, so a syntax error within
      // them is found only here too, and reads as a truncation.)
      return { err, atEnd: input === none && machine.started };
    }
    try {
      if (isMany(tokens)) {
        for (const tok of getManyValues(tokens) as Token[]) {
          const packed = packer.pack(tok);
          if (packed) machine.push(packed);
        }
      }
    } catch (err) {
      return { err, atEnd: false };
    }
    if (input !== none) return null;
    try {
      machine.end();
      return null;
    } catch (err) {
      return { err, atEnd: machine.started };
    }
  };
  /** The fault `err` makes; `atEnd` when the file ended before its document did (truncated). */
  const fault = (err: unknown, atEnd: boolean): PassFault => {
    const tail = Buffer.concat([previous, latest]);
    const completeItems = machine.nextIndex;
    const truncated = atEnd || (err instanceof EncodingError && err.truncated);
    const atByte = err instanceof EncodingError ? err.atByte : bytesRead;
    const message = err instanceof ValidationError ? err.detail : `not valid JSON: ${(err as Error).message}`;
    const detail = truncated
      ? `file truncated: it ends at byte ${atByte}, after ${completeItems} complete media items: ${message}`
      : err instanceof EncodingError
        ? `${message} (after ${completeItems} complete media items)`
        : `${message} (in the first ${bytesRead} bytes)`;
    return {
      item: {
        index: machine.nextIndex,
        ok: false,
        reason: "MALFORMED_VICS",
        detail,
        original: tail.subarray(Math.max(0, tail.length - TAIL_BYTES)),
      },
      truncated,
      atByte,
      completeItems,
    };
  };

  try {
    for await (const { text, bytes } of decodedText(source, "MALFORMED_VICS")) {
      bytesRead += bytes.length;
      if (bytes.length > 0) {
        previous = latest.length >= TAIL_BYTES ? latest.subarray(latest.length - TAIL_BYTES) : latest;
        latest = bytes;
      }
      // In slices of FEED_CHARS, yielding between them (see FEED_CHARS).
      for (let at = 0; at < text.length; at += FEED_CHARS) {
        const failed = feed(text.length <= FEED_CHARS ? text : text.slice(at, at + FEED_CHARS));
        const ready = machine.out;
        machine.out = [];
        yield* ready;
        if (failed) return fault(failed.err, failed.atEnd);
      }
    }
  } catch (err) {
    if (err instanceof EncodingError) return fault(err, false);
    throw err;
  }
  const failed = feed(none);
  yield* machine.out;
  machine.out = [];
  return failed ? fault(failed.err, failed.atEnd) : null;
}
