/**
 * A streaming JSON value assembler over stream-json's tokenizer: TokenPacker bounds every key,
 * string and number as it streams in, and JsonValueAssembler builds one JSON value at a time from
 * the packed tokens (or skips it), counting its size and depth. Format readers (VICS) drive it
 * from their own state machine, so a file of any size is read one bounded value at a time.
 *
 * Invariants: memory per value is bounded by its limit whatever the input (an oversize or too
 * deep value is dropped and flagged, never held); object keys become own data properties, never
 * prototypes ("__proto__" included); integers past 2^53 keep their text.
 */
import type { Token } from "stream-json/core/parser.js";

export type JsonObject = Record<string, unknown>;

export function newObject(): JsonObject {
  return {};
}

/** Sets an own property, "__proto__" included (as data, never as the prototype). */
export function setOwnProp(obj: JsonObject, key: string, value: unknown): void {
  if (key === "__proto__") Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  else obj[key] = value;
}

export function jsonNumber(raw: string): number | string {
  const n = Number(raw);
  // Integers past 2^53 would lose digits (a MediaID, say): keep their text.
  return Number.isInteger(n) && !Number.isSafeInteger(n) ? raw : n;
}

export const NOT_SCALAR = Symbol("not a scalar");

/** The value of a packed scalar token, or NOT_SCALAR for a structural one. */
export function scalarOf(tok: Token): unknown {
  switch (tok.name) {
    case "stringValue":
      return tok.value;
    case "numberValue":
      return jsonNumber(tok.value);
    case "nullValue":
    case "trueValue":
    case "falseValue":
      return tok.value;
    default:
      return NOT_SCALAR;
  }
}

/**
 * Packs the tokenizer's streamed keys, strings and numbers into keyValue, stringValue and
 * numberValue tokens, keeping at most `cap` characters of each. stream-json's own packing holds
 * a whole token however long, so one huge string or number in an item would take memory in
 * proportion, whatever the item limit said. With cap = item limit + 1, a cut token always makes
 * what holds it oversize, so a caller that refuses oversize values never takes its cut text as data.
 */
export class TokenPacker {
  private text = "";

  private readonly cap: number;

  constructor(cap: number) {
    this.cap = cap;
  }

  /** The token to pass on, or null while a key, string or number is still arriving. */
  pack(tok: Token): Token | null {
    switch (tok.name) {
      case "startKey":
      case "startString":
      case "startNumber":
        this.text = "";
        return null;
      case "stringChunk":
      case "numberChunk": {
        const room = this.cap - this.text.length;
        if (room > 0) this.text += tok.value.length > room ? tok.value.slice(0, room) : tok.value;
        return null;
      }
      case "endKey":
        return { name: "keyValue", value: this.take() };
      case "endString":
        return { name: "stringValue", value: this.take() };
      case "endNumber":
        return { name: "numberValue", value: this.take() };
      default:
        return tok;
    }
  }

  private take(): string {
    const text = this.text;
    this.text = "";
    return text;
  }
}

export interface JsonValueAssemblerOptions {
  /** Largest value kept, in characters of JSON; a bigger one is dropped and marked oversize. */
  readonly limit: number;
  /** Skip the value (still counting its size and depth) instead of building it. */
  readonly discard: boolean;
  /** Deepest nesting kept; a deeper value is dropped and marked tooDeep, like an oversize one. */
  readonly maxDepth: number;
  /** Deepest nesting tolerated at all: past it the input is refused with the error tooDeep makes. */
  readonly maxTotalDepth: number;
  readonly tooDeep: (detail: string) => Error;
}

/** Builds one JSON value from tokens (or just skips it), counting its size. */
export class JsonValueAssembler {
  value: unknown = undefined;
  size = 0;
  oversize = false;
  /** Nested deeper than maxDepth: refused like an oversize value. */
  tooDeep = false;
  private readonly stack: (JsonObject | unknown[])[] = [];
  private key = "";
  private depth = 0;

  private readonly limit: number;
  private discard: boolean;
  private readonly maxDepth: number;
  private readonly maxTotalDepth: number;
  private readonly refuse: (detail: string) => Error;

  constructor(options: JsonValueAssemblerOptions) {
    this.limit = options.limit;
    this.discard = options.discard;
    this.maxDepth = options.maxDepth;
    this.maxTotalDepth = options.maxTotalDepth;
    this.refuse = options.tooDeep;
  }

  /** Feeds one token; true once the value is complete. */
  push(tok: Token): boolean {
    switch (tok.name) {
      case "startObject":
        return this.open(newObject());
      case "startArray":
        return this.open([]);
      case "endObject":
      case "endArray":
        this.depth--;
        if (!this.discard) this.stack.pop();
        return this.depth === 0;
      case "keyValue":
        this.key = tok.value;
        this.grow(tok.value.length + 4);
        return false;
      case "stringValue":
        this.grow(tok.value.length + 3);
        return this.scalar(tok.value);
      case "numberValue":
        this.grow(tok.value.length + 1);
        return this.scalar(jsonNumber(tok.value));
      case "nullValue":
      case "trueValue":
      case "falseValue":
        this.grow(5);
        return this.scalar(tok.value);
      default:
        return false; // chunk/whitespace tokens: not produced with packed, unstreamed values
    }
  }

  private grow(n: number): void {
    this.size += n;
    if (!this.discard && this.size > this.limit) {
      this.oversize = true;
      this.discard = true;
      this.stack.length = 0;
      this.value = undefined;
    }
  }

  private open(container: JsonObject | unknown[]): boolean {
    if (this.depth >= this.maxTotalDepth) throw this.refuse(`nested deeper than ${this.maxTotalDepth} levels`);
    this.grow(2);
    // A skipped value is flagged too deep as a kept one would be, so a reader's passes agree on it.
    if (this.depth >= this.maxDepth && !this.tooDeep && !this.oversize) {
      this.tooDeep = true;
      this.discard = true;
      this.stack.length = 0;
      this.value = undefined;
    }
    if (!this.discard) {
      this.add(container);
      this.stack.push(container);
    }
    this.depth++;
    return false;
  }

  private scalar(v: unknown): boolean {
    if (!this.discard) this.add(v);
    return this.depth === 0;
  }

  private add(v: unknown): void {
    const parent = this.stack[this.stack.length - 1];
    if (parent === undefined) this.value = v;
    else if (Array.isArray(parent)) parent.push(v);
    else setOwnProp(parent, this.key, v);
  }
}
