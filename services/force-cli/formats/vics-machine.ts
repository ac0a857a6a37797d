/**
 * The token-driven state machine of the VICS reader (vics.ts): stream-json tokens in, one
 * DraftItem per media item out, one media object assembled at a time (vics-media.ts maps it).
 * The reader's module comment describes the shapes it accepts; this file keeps their structure:
 * root object, "value" array, Media-form items or cases with a "Media" array.
 *
 * Invariants: memory is bounded per media item and case header (maxItemChars, MAX_ITEM_DEPTH),
 * plus, in a scan, one caseRef per case whose case-level fields come after its Media array (at
 * most MAX_LATE_CASES); items are numbered 0.. in file order in both passes, so a scan's counts
 * and case ordinals are the items pass's. A scan builds no media item: of an element of "value"
 * it keeps only the fields caseRefOf reads (CASE_REF_KEYS), counting the rest's size as the items
 * pass does, so both passes agree on which case header is oversize.
 */
import type { Token } from "stream-json/core/parser.js";
import { ValidationError } from "../../shared/errors.ts";
import { failedItem } from "./common.ts";
import type { DraftItem } from "./common.ts";
import { JsonValueAssembler, NOT_SCALAR, newObject, scalarOf, setOwnProp } from "./streaming-json-assembler.ts";
import type { JsonObject } from "./streaming-json-assembler.ts";
import { CASE_REF_KEYS, caseRefOf, mediaToDraft, norm } from "./vics-media.ts";
import type { CaseContext, VicsProfile } from "./vics-media.ts";

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
export function malformed(detail: string): ValidationError {
  return new ValidationError("MALFORMED_VICS", detail);
}

type Frame =
  | { readonly t: "root" }
  | { readonly t: "values" }
  | {
      readonly t: "element";
      fields: JsonObject;
      size: number;
      oversize: boolean;
      tooDeep: boolean;
      /** A CaseNumber or CaseID key it gives twice (the same key: a JSON object keeps only the last). */
      repeated: string | null;
      /** Set when its "Media" array opens: the element is a case, and this is its context. */
      caseCtx: CaseContext | null;
    }
  | { readonly t: "media"; readonly ctx: CaseContext };

type Pending =
  | { readonly kind: "version"; readonly profile: VicsProfile }
  | { readonly kind: "skip" }
  | { readonly kind: "field"; readonly key: string; readonly keep: boolean }
  | { readonly kind: "item"; readonly ctx: CaseContext | null; readonly where: string };

const VERSION_KEYS: Readonly<Record<string, VicsProfile>> = {
  "odata.metadata": "vics-1.x",
  "@odata.metadata": "vics-1.x",
  "@odata.context": "vics-2.0",
  "odata.context": "vics-2.0",
};

/** What a case's fields say of its media: their caseRef, or why they have none (then each is refused). */
export type CaseRef = Pick<CaseContext, "caseRef" | "refused">;

/**
 * Which pass of a file the machine makes:
 * - "scan" yields no item: it skips every media item, counting them, and records the CaseRef of
 *   each case whose case-level fields after its "Media" array change it (lateCaseRefs);
 * - "items" yields the items, taking a case's CaseRef from lateCaseRefs (a scan's) when it is there.
 */
export type Pass = { readonly kind: "scan" } | { readonly kind: "items"; readonly lateCaseRefs: ReadonlyMap<number, CaseRef> };

/**
 * Cases whose caseRef a scan records. A real export holds a few cases; past this many late ones
 * the scan refuses the file (lateCaseLimit), since each takes memory until the items pass.
 */
export const MAX_LATE_CASES = 10_000;

/** The token-driven state machine: tokens in, DraftItems out (into `out`). */
export class VicsMachine {
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
  /** What a scan found: CaseRefs that case-level fields after "Media" set (by case ordinal). */
  readonly lateCaseRefs = new Map<number, CaseRef>();
  /** A scan refused the file for holding more than MAX_LATE_CASES such cases. */
  lateCaseLimit = false;

  private readonly prefix: string;
  readonly limit: number;
  private readonly pass: Pass;

  constructor(prefix: string, limit: number, pass: Pass) {
    this.prefix = prefix;
    this.limit = limit;
    this.pass = pass;
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

  /** True once the file's top-level object has opened: a file that ends before is empty, not truncated. */
  get started(): boolean {
    return this.stack.length > 0 || this.finished;
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
        } else if (!top.oversize && pending.keep) {
          this.setField(top, pending.key, asm.value);
        }
        return;
      }
      case "item": {
        const index = this.nextIndex++;
        if (this.pass.kind === "scan") return;
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
      this.stack.push({ t: "element", fields: newObject(), size: 0, oversize: false, tooDeep: false, repeated: null, caseCtx: null });
      return;
    }
    this.assemble(tok, { kind: "item", ctx: null, where: `value[${this.nextIndex}]` }, this.pass.kind === "scan");
  }

  private inElement(tok: Token, top: Extract<Frame, { t: "element" }>): void {
    if (tok.name === "keyValue") {
      this.key = tok.value;
      return;
    }
    if (tok.name === "endObject") {
      this.stack.pop();
      if (top.caseCtx) {
        if (this.pass.kind === "scan") this.recordLateCaseRef(top.caseCtx, this.caseRefFrom(top, top.caseCtx.ordinal));
        return;
      }
      const index = this.nextIndex++;
      if (this.pass.kind === "scan") return;
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
    if (tok.name === "startArray" && !top.caseCtx && norm(key) === "media") {
      const ordinal = this.cases++;
      const late = this.pass.kind === "items" ? this.pass.lateCaseRefs.get(ordinal) : undefined;
      top.caseCtx = { ...(late ?? this.caseRefFrom(top, ordinal)), ordinal };
      this.stack.push({ t: "media", ctx: top.caseCtx });
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
      } else if (!top.oversize && this.keeps(key)) {
        this.setField(top, key, scalar);
      }
      return;
    }
    const keep = this.keeps(key);
    this.assemble(tok, { kind: "field", key, keep }, !keep);
  }

  private inMedia(tok: Token, top: Extract<Frame, { t: "media" }>): void {
    if (tok.name === "endArray") {
      this.stack.pop();
      return;
    }
    this.assemble(tok, { kind: "item", ctx: top.ctx, where: `case ${top.ctx.ordinal} Media item` }, this.pass.kind === "scan");
  }

  /** Whether this pass keeps a field of an element of "value": a scan keeps only the case fields. */
  private keeps(key: string): boolean {
    return this.pass.kind === "items" || CASE_REF_KEYS.has(norm(key));
  }

  private setField(top: Extract<Frame, { t: "element" }>, key: string, value: unknown): void {
    if (top.repeated === null && Object.hasOwn(top.fields, key) && CASE_REF_KEYS.has(norm(key))) top.repeated = key;
    setOwnProp(top.fields, key, value);
  }

  /** The CaseRef of a case from the fields it has given so far. */
  private caseRefFrom(top: Extract<Frame, { t: "element" }>, ordinal: number): CaseRef {
    try {
      return { caseRef: caseRefOf(top.fields, top.repeated), refused: null };
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      const detail =
        `case ${ordinal}: ${err.detail}: which case its media belong to is uncertain, so each of its media items is refused; ` +
        "export the case with one CaseNumber and at most one CaseID";
      return { caseRef: null, refused: new ValidationError(err.reason, detail) };
    }
  }

  /** In a scan, at a case's end: its CaseRef from all its fields, kept when the fields after "Media" changed it. */
  private recordLateCaseRef(ctx: CaseContext, found: CaseRef): void {
    if (found.refused ? ctx.refused : !ctx.refused && found.caseRef === ctx.caseRef) return;
    if (this.lateCaseRefs.size >= MAX_LATE_CASES) {
      this.lateCaseLimit = true;
      throw malformed(
        `more than ${MAX_LATE_CASES} cases give their CaseNumber or CaseID after their "Media" array; ` +
          'export the case fields before "Media", or split the file',
      );
    }
    this.lateCaseRefs.set(ctx.ordinal, found);
  }

  private emitMedia(index: number, media: JsonObject, ctx: CaseContext | null, original: Buffer): void {
    if (ctx?.refused) {
      this.out.push(failedItem(index, ctx.refused, original));
      return;
    }
    try {
      const { draft, ignoredHashNames } = mediaToDraft(media, ctx, this.profile as VicsProfile, this.prefix);
      this.out.push(
        ignoredHashNames.length > 0 ? { index, ok: true, draft, original, ignoredHashNames } : { index, ok: true, draft, original },
      );
    } catch (err) {
      this.out.push(failedItem(index, err, original));
    }
  }
}
