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
 *   "Media": [media...]}]}`. Case-level fields that come before "Media" apply to its media
 *   (CaseNumber, else CaseID, becomes lawEnforcement.caseRef); ones after it are not seen.
 * The metadata/context property must come before "value" (OData requires it first); it decides
 * the vics profile kept on each grade: "vics-1.x" or "vics-2.0".
 *
 * Media fields read: MD5, SHA1, SHA256, PhotoDNA (base64 or hex), PDQ (+ PDQQuality), Category,
 * UKCategory / Category_UK, IsDistributed, VictimIdentified, OffenderIdentified, Series,
 * MediaID, Grader / GraderName. Everything else (file names, paths, EXIF...) is ignored: the hub
 * takes hashes and metadata only. Every draft is an ASSERT of an "image" with gradingStatus
 * "indicative".
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
 * Results stream out in file order. A bad media item yields a failed item and reading goes on.
 * A file that is not VICS JSON (bad syntax, truncation, wrong shape, nesting deeper than 10,000
 * levels) yields one MALFORMED_VICS item and stops; items before the fault have already been
 * yielded (except those completed within the fault's own 4 KiB slice of text, whose tokens the
 * tokenizer drops when it throws: see FEED_CHARS), so a caller that wants a file all-or-nothing
 * must hold them until the end. A media item
 * larger than maxItemChars or nested deeper than 64 levels is one failed item (MALFORMED_VICS,
 * empty original) and reading goes on. The original of a media item is its JSON,
 * re-serialised; that of a MALFORMED_VICS item is the last few KiB of the file before the fault.
 */
import { getManyValues, isMany, none } from "stream-chain/defs.js";
import { jsonParser } from "stream-json/core/parser.js";
import type { Token } from "stream-json/core/parser.js";
import { ValidationError } from "../../shared/errors.ts";
import type { Hash, UkCategory } from "../../shared/wire/records.ts";
import { HASH_ALGORITHMS } from "../../shared/wire/hash-algorithms.ts";
import type { HashAlgorithm, QualityRule } from "../../shared/wire/hash-algorithms.ts";
import { normaliseHash, SUBMISSION_ID_PATTERN, validateDraft } from "../../shared/wire/submission-validation.ts";
import type { SubmissionDraft } from "../../shared/wire/submission-validation.ts";
import { JsonValueAssembler, NOT_SCALAR, TokenPacker, newObject, scalarOf, setOwnProp } from "./streaming-json-assembler.ts";
import type { JsonObject } from "./streaming-json-assembler.ts";
import { checkPrefix, derivedSubmissionId, failedItem, hashesMaterial, looseBoolean, looseUkCategory, textOf } from "./common.ts";
import type { ByteSource, DraftItem, FileReaderOptions } from "./common.ts";

export type VicsProfile = "vics-1.x" | "vics-2.0";

export interface VicsReaderOptions extends FileReaderOptions {
  /** Largest media item (or case header), in characters of JSON; a bigger one is rejected. Default 1 MiB. */
  readonly maxItemChars?: number;
}

/** VICS category code → UK category, when the media gives no UK category itself. */
export const VICS_TO_UK: Readonly<Record<number, UkCategory>> = {
  0: "NON_INDECENT",
  1: "UNGRADED",
  2: "UNGRADED",
  3: "PROHIBITED_NONPHOTO",
  4: "NON_INDECENT",
};

const DEFAULT_MAX_ITEM_CHARS = 1 << 20;
const TAIL_BYTES = 4096;
/**
 * Deepest nesting inside one media item (or case header field); a deeper item is refused like an
 * oversize one and reading goes on. Real exports nest a few levels; a deeper one would overflow
 * the stack when re-serialised for its original and stop the whole file.
 */
const MAX_ITEM_DEPTH = 64;
/**
 * Deepest nesting anywhere in the file: past it the whole file is refused (MALFORMED_VICS), since
 * the tokenizer keeps a frame per open level, so 1 GB of "[" would take gigabytes.
 */
const MAX_FILE_DEPTH = 10_000;
/**
 * Most characters handed to the tokenizer at once, so that:
 * - the items one source chunk makes are yielded in batches, however large the chunk (a source
 *   chunk of millions of tiny failed items would otherwise all be held before the first is yielded);
 * - a syntax error loses at most the items completed within its own slice: the tokenizer throws
 *   away the tokens of the call that fails, which with a whole source chunk per call would be
 *   every item of that chunk, neither yielded nor rejected.
 */
const FEED_CHARS = 4096;

const normCache = new Map<string, string>();

/** Property names as compared: lower case, without "_", "-" or spaces. */
function norm(key: string): string {
  let n = normCache.get(key);
  if (n === undefined) {
    n = key.toLowerCase().replace(/[\s_-]/g, "");
    // Short keys only: caching long distinct keys would pin memory a hostile file chooses.
    if (normCache.size < 4096 && key.length <= 64) normCache.set(key, n);
  }
  return n;
}

function malformed(detail: string): ValidationError {
  return new ValidationError("MALFORMED_VICS", detail);
}

interface CaseContext {
  readonly caseRef: string | null;
  /** 0 for the file's first case. */
  readonly ordinal: number;
}

type Frame =
  | { readonly t: "root" }
  | { readonly t: "values" }
  | { readonly t: "element"; fields: JsonObject; size: number; oversize: boolean; tooDeep: boolean; isCase: boolean }
  | { readonly t: "media"; readonly ctx: CaseContext };

type Pending =
  | { readonly kind: "version"; readonly profile: VicsProfile }
  | { readonly kind: "skip" }
  | { readonly kind: "field"; readonly key: string }
  | { readonly kind: "item"; readonly ctx: CaseContext | null; readonly where: string };

const VERSION_KEYS: Readonly<Record<string, VicsProfile>> = {
  "odata.metadata": "vics-1.x",
  "@odata.metadata": "vics-1.x",
  "@odata.context": "vics-2.0",
  "odata.context": "vics-2.0",
};

/** The token-driven state machine: tokens in, DraftItems out (into `out`). */
class VicsMachine {
  out: DraftItem[] = [];
  nextIndex = 0;
  private readonly stack: Frame[] = [];
  private profile: VicsProfile | null = null;
  private sawValues = false;
  private finished = false;
  private key: string | null = null;
  private asm: JsonValueAssembler | null = null;
  private pending: Pending | null = null;
  private cases = 0;

  private readonly prefix: string;
  private readonly limit: number;

  constructor(prefix: string, limit: number) {
    this.prefix = prefix;
    this.limit = limit;
  }

  push(tok: Token): void {
    if (this.asm) {
      if (this.asm.push(tok)) this.deliver();
      return;
    }
    const top = this.stack[this.stack.length - 1];
    if (!top) {
      if (this.finished) throw malformed("content after the top-level object");
      if (tok.name !== "startObject") throw malformed('the top level must be a JSON object with a "value" array');
      this.stack.push({ t: "root" });
      return;
    }
    switch (top.t) {
      case "root":
        this.inRoot(tok);
        break;
      case "values":
        this.inValues(tok);
        break;
      case "element":
        this.inElement(tok, top);
        break;
      case "media":
        this.inMedia(tok, top);
        break;
    }
  }

  end(): void {
    if (!this.finished) throw malformed("unexpected end of file (truncated?)");
  }

  private assemble(tok: Token, pending: Pending, discard = false): void {
    this.pending = pending;
    this.asm = new JsonValueAssembler({
      limit: this.limit,
      discard,
      maxDepth: MAX_ITEM_DEPTH,
      maxTotalDepth: MAX_FILE_DEPTH,
      tooDeep: malformed,
    });
    if (this.asm.push(tok)) this.deliver();
  }

  private deliver(): void {
    const asm = this.asm as JsonValueAssembler;
    const pending = this.pending as Pending;
    this.asm = null;
    this.pending = null;
    switch (pending.kind) {
      case "skip":
        return;
      case "version":
        if (typeof asm.value !== "string") throw malformed("odata.metadata / @odata.context must be a string");
        this.profile = pending.profile;
        return;
      case "field": {
        const top = this.stack[this.stack.length - 1];
        if (top?.t !== "element") return;
        // The key counts too: many huge keys with empty values would otherwise be held whole.
        top.size += asm.size + pending.key.length + 4;
        if (asm.tooDeep) top.tooDeep = true;
        if (asm.oversize || asm.tooDeep || top.size > this.limit) {
          top.oversize = true;
          top.fields = newObject();
        } else if (!top.oversize) {
          setOwnProp(top.fields, pending.key, asm.value);
        }
        return;
      }
      case "item": {
        const index = this.nextIndex++;
        if (asm.oversize || asm.tooDeep) {
          this.out.push({
            index,
            ok: false,
            reason: "MALFORMED_VICS",
            detail: asm.oversize
              ? `${pending.where}: media item larger than ${this.limit} characters`
              : `${pending.where}: media item nested deeper than ${MAX_ITEM_DEPTH} levels`,
            original: Buffer.alloc(0),
          });
          return;
        }
        const value = asm.value;
        const original = Buffer.from(JSON.stringify(value) ?? "null", "utf8");
        if (typeof value !== "object" || value === null || Array.isArray(value)) {
          this.out.push({
            index,
            ok: false,
            reason: "MALFORMED_VICS",
            detail: `${pending.where}: a media item must be an object`,
            original,
          });
          return;
        }
        this.emitMedia(index, value as JsonObject, pending.ctx, original);
        return;
      }
    }
  }

  private inRoot(tok: Token): void {
    if (tok.name === "keyValue") {
      this.key = tok.value;
      return;
    }
    if (tok.name === "endObject") {
      this.stack.pop();
      this.finished = true;
      if (!this.sawValues) throw malformed('no "value" array: not a VICS Media or Cases export');
      return;
    }
    const key = this.key ?? "";
    const k = norm(key);
    // Own properties only: a root key "constructor", "toString" or "__proto__" would otherwise find
    // Object.prototype's and pass for the metadata, making the profile a function.
    const lower = key.toLowerCase();
    const version = Object.hasOwn(VERSION_KEYS, lower) ? VERSION_KEYS[lower] : undefined;
    if (version) {
      this.assemble(tok, { kind: "version", profile: version });
      return;
    }
    if (k === "value") {
      if (tok.name !== "startArray") throw malformed('"value" must be an array');
      if (this.sawValues) throw malformed('more than one "value" array');
      if (!this.profile) throw malformed('no "odata.metadata" (VICS 1.x) or "@odata.context" (VICS 2.0) before "value"');
      this.sawValues = true;
      this.stack.push({ t: "values" });
      return;
    }
    this.assemble(tok, { kind: "skip" }, true);
  }

  private inValues(tok: Token): void {
    if (tok.name === "endArray") {
      this.stack.pop();
      return;
    }
    if (tok.name === "startObject") {
      this.stack.push({ t: "element", fields: newObject(), size: 0, oversize: false, tooDeep: false, isCase: false });
      return;
    }
    this.assemble(tok, { kind: "item", ctx: null, where: `value[${this.nextIndex}]` });
  }

  private inElement(tok: Token, top: Extract<Frame, { t: "element" }>): void {
    if (tok.name === "keyValue") {
      this.key = tok.value;
      return;
    }
    if (tok.name === "endObject") {
      this.stack.pop();
      if (top.isCase) return;
      const index = this.nextIndex++;
      if (top.oversize) {
        this.out.push({
          index,
          ok: false,
          reason: "MALFORMED_VICS",
          detail: top.tooDeep
            ? `media item nested deeper than ${MAX_ITEM_DEPTH} levels`
            : `media item larger than ${this.limit} characters`,
          original: Buffer.alloc(0),
        });
        return;
      }
      this.emitMedia(index, top.fields, null, Buffer.from(JSON.stringify(top.fields), "utf8"));
      return;
    }
    const key = this.key ?? "";
    if (tok.name === "startArray" && !top.isCase && norm(key) === "media") {
      top.isCase = true;
      const ctx: CaseContext = { caseRef: caseRefOf(top.fields), ordinal: this.cases++ };
      this.stack.push({ t: "media", ctx });
      return;
    }
    const scalar = scalarOf(tok);
    if (scalar !== NOT_SCALAR) {
      // Fast path for the common case: a plain property of a media item.
      // Numbers count by their text, so a huge number makes its item oversize like a huge string.
      top.size += key.length + 8 + (tok.name === "stringValue" || tok.name === "numberValue" ? tok.value.length : 0);
      if (top.size > this.limit) {
        top.oversize = true;
        top.fields = newObject();
      } else if (!top.oversize) {
        setOwnProp(top.fields, key, scalar);
      }
      return;
    }
    this.assemble(tok, { kind: "field", key });
  }

  private inMedia(tok: Token, top: Extract<Frame, { t: "media" }>): void {
    if (tok.name === "endArray") {
      this.stack.pop();
      return;
    }
    this.assemble(tok, { kind: "item", ctx: top.ctx, where: `case ${top.ctx.ordinal} Media item` });
  }

  private emitMedia(index: number, media: JsonObject, ctx: CaseContext | null, original: Buffer): void {
    try {
      const draft = mediaToDraft(media, ctx, this.profile as VicsProfile, this.prefix);
      this.out.push({ index, ok: true, draft, original });
    } catch (err) {
      this.out.push(failedItem(index, err, original));
    }
  }
}

// ---- one media item -------------------------------------------------------------------------

/** Case-insensitive view of an object's properties; a property given twice (in two spellings) is refused when read. */
class Props {
  private readonly map = new Map<string, { key: string; value: unknown }>();
  private readonly twice = new Set<string>();

  constructor(obj: JsonObject) {
    for (const key of Object.keys(obj)) {
      const k = norm(key);
      if (this.map.has(k)) this.twice.add(k);
      else this.map.set(k, { key, value: obj[key] });
    }
  }

  /** The first of `names` present, with the key as spelt in the file. */
  get(...names: string[]): { key: string; value: unknown } | undefined {
    for (const n of names) {
      if (this.twice.has(n)) throw new ValidationError("INVALID_FIELD", `${n}: property given more than once (in different spellings)`);
      const hit = this.map.get(n);
      if (hit !== undefined && hit.value !== null && hit.value !== "") return hit;
    }
    return undefined;
  }
}

function textOrNumber(p: { key: string; value: unknown } | undefined): string | null {
  if (!p) return null;
  if (typeof p.value === "string") return p.value.trim() || null;
  if (typeof p.value === "number") return String(p.value);
  throw new ValidationError("INVALID_FIELD", `${p.key}: must be text or a number, got ${JSON.stringify(p.value)}`);
}

function caseRefOf(fields: JsonObject): string | null {
  try {
    const props = new Props(fields);
    return textOrNumber(props.get("casenumber")) ?? textOrNumber(props.get("caseid"));
  } catch {
    return null;
  }
}

/** Each algorithm's VICS media property (and quality property), in the order drafts list their hashes (the table's vics.position). */
const HASH_PROPS = [...HASH_ALGORITHMS]
  .sort((x, y) => x.vics.position - y.vics.position)
  .map((alg) => ({ alg, key: norm(alg.vics.property), qualityKey: alg.quality ? norm(alg.quality.vicsProperty) : null }));
const HASH_PROP_NAMES = HASH_PROPS.map((h) => h.alg.vics.property).join(", ");

function vicsCategory(p: { key: string; value: unknown } | undefined): number | null {
  if (!p) return null;
  let code: number | null = null;
  if (typeof p.value === "number") code = p.value;
  else if (typeof p.value === "string" && /^\s*\d+\s*$/.test(p.value)) code = Number(p.value);
  if (code === null || !Number.isInteger(code) || VICS_TO_UK[code] === undefined) {
    throw new ValidationError("INVALID_CATEGORY", `${p.key}: ${JSON.stringify(p.value)} is not a VICS category (0-4 or null)`);
  }
  return code;
}

function qualityOf(p: { key: string; value: unknown } | undefined, alg: HashAlgorithm, rule: QualityRule): number | null {
  if (!p) return null;
  if (typeof p.value === "number") return p.value;
  if (typeof p.value === "string" && /^\s*-?\d+\s*$/.test(p.value)) return Number(p.value);
  throw new ValidationError(
    "INVALID_HASH",
    `${p.key}: ${alg.name} quality must be an integer from ${rule.min} to ${rule.max}, got ${JSON.stringify(p.value)}`,
  );
}

/** The validated draft for one VICS media object; throws ValidationError. */
function mediaToDraft(media: JsonObject, ctx: CaseContext | null, profile: VicsProfile, prefix: string): SubmissionDraft {
  const props = new Props(media);

  const hashes: Hash[] = [];
  for (const { alg, key, qualityKey } of HASH_PROPS) {
    const p = props.get(key);
    if (!p) continue;
    if (typeof p.value !== "string")
      throw new ValidationError("INVALID_HASH", `${p.key}: must be a string, got ${JSON.stringify(p.value)}`);
    const quality = alg.quality && qualityKey ? qualityOf(props.get(qualityKey), alg, alg.quality) : null;
    try {
      hashes.push(normaliseHash(alg.name, p.value, quality));
    } catch (err) {
      if (err instanceof ValidationError) throw new ValidationError(err.reason, `${p.key}: ${err.detail}`);
      throw err;
    }
  }
  if (hashes.length === 0) throw new ValidationError("NO_HASHES", `media item has none of ${HASH_PROP_NAMES}`);

  const code = vicsCategory(props.get("category"));
  const ukProp = props.get("ukcategory", "categoryuk");
  const ukOwn = ukProp ? looseUkCategory(ukProp.value, ukProp.key) : null;
  const uk: UkCategory = ukOwn ?? (code === null ? "UNGRADED" : (VICS_TO_UK[code] as UkCategory));

  const flag = (name: string): boolean | null => {
    const p = props.get(name);
    return p ? looseBoolean(p.value, p.key) : null;
  };

  const mediaId = textOrNumber(props.get("mediaid"));
  const scope = ctx && ctx.ordinal > 0 ? `c${ctx.ordinal}.` : "";
  let submissionId: string;
  if (mediaId === null) submissionId = derivedSubmissionId(prefix + scope, "h", hashesMaterial(hashes));
  else if (SUBMISSION_ID_PATTERN.test(prefix + scope + mediaId)) submissionId = prefix + scope + mediaId;
  else submissionId = derivedSubmissionId(prefix + scope, "m", mediaId);

  return validateDraft({
    submissionId,
    op: "ASSERT",
    contentType: "image",
    hashes,
    grade: { uk, ics: null, vics: code === null ? null : { profile, code } },
    gradingStatus: "indicative",
    lawEnforcement: {
      caseRef: ctx?.caseRef ?? null,
      series: textOrNumber(props.get("series")),
      victimIdentified: flag("victimidentified"),
      offenderIdentified: flag("offenderidentified"),
      isDistributed: flag("isdistributed"),
      graderRef: textOrNumber(props.get("grader", "gradername")),
    },
  });
}

// ---- the reader -----------------------------------------------------------------------------

/**
 * Reads a VICS JSON export as a stream of per-media results (see the module comment).
 * Throws at once (INVALID_FIELD) for a bad submissionIdPrefix; errors of the source itself
 * (an I/O failure) propagate from the iteration; everything about the content is an item.
 */
export function readVicsDrafts(source: ByteSource, opts: VicsReaderOptions): AsyncGenerator<DraftItem, void, undefined> {
  const prefix = checkPrefix(opts.submissionIdPrefix);
  return read(source, prefix, opts.maxItemChars ?? DEFAULT_MAX_ITEM_CHARS);
}

async function* read(source: ByteSource, prefix: string, limit: number): AsyncGenerator<DraftItem, void, undefined> {
  // Streamed, not packed, so TokenPacker can bound every key, string and number (see TokenPacker).
  const tokenize = jsonParser({ packValues: false, streamValues: true });
  const packer = new TokenPacker(Number.isNaN(limit) ? Infinity : Math.max(0, limit) + 1); // NaN means no limit
  const machine = new VicsMachine(prefix, limit);
  let previous: Buffer = Buffer.alloc(0);
  let latest: Buffer = Buffer.alloc(0);
  let bytesRead = 0;

  const feed = (input: string | typeof none): unknown => {
    try {
      const tokens = (tokenize as unknown as (v: string | typeof none) => unknown)(input);
      if (isMany(tokens)) {
        for (const tok of getManyValues(tokens) as Token[]) {
          const packed = packer.pack(tok);
          if (packed) machine.push(packed);
        }
      }
      if (input === none) machine.end();
      return null;
    } catch (err) {
      return err;
    }
  };
  const fault = (err: unknown): DraftItem => {
    const tail = Buffer.concat([previous, latest]);
    const message = err instanceof ValidationError ? err.detail : `not valid JSON: ${(err as Error).message}`;
    return {
      index: machine.nextIndex,
      ok: false,
      reason: "MALFORMED_VICS",
      detail: `${message} (in the first ${bytesRead} bytes)`,
      original: tail.subarray(Math.max(0, tail.length - TAIL_BYTES)),
    };
  };

  for await (const { text, bytes } of textOf(source)) {
    bytesRead += bytes.length;
    if (bytes.length > 0) {
      previous = latest.length >= TAIL_BYTES ? latest.subarray(latest.length - TAIL_BYTES) : latest;
      latest = bytes;
    }
    // In slices of FEED_CHARS, yielding between them (see FEED_CHARS).
    for (let at = 0; at < text.length; at += FEED_CHARS) {
      const err = feed(text.length <= FEED_CHARS ? text : text.slice(at, at + FEED_CHARS));
      const ready = machine.out;
      machine.out = [];
      yield* ready;
      if (err) {
        yield fault(err);
        return;
      }
    }
  }
  const err = feed(none);
  yield* machine.out;
  machine.out = [];
  if (err) yield fault(err);
}
