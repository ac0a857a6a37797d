/**
 * Array parameters in PostgreSQL's binary form. node-postgres writes a JS array as a text literal
 * ('{"a","b"}': every element quoted, escaped and concatenated, bytea as hex) that the server then
 * parses back; the rounds' set-based statements pass every column of a batch that way, so both ends
 * spent much of a round building and parsing strings. A Buffer parameter is sent in the binary
 * format instead, and PostgreSQL reads an array from it with array_recv: lengths and raw bytes,
 * nothing to quote or parse.
 *
 * The statement names each array's type in its text ($n::text[]); `boundValues` reads those casts
 * and encodes each JS array given for one. The server refuses an array whose element type is not
 * the one its cast names, so a mismatch fails loudly, never silently.
 */
import type pg from "pg";

/** Element types this encoder writes, by the name used in a statement's cast, with their OIDs. */
const ELEMENT_OIDS = {
  text: 25,
  uuid: 2950,
  bigint: 20,
  int8: 20,
  int: 23,
  int4: 23,
  integer: 23,
  boolean: 16,
  bool: 16,
  bytea: 17,
  jsonb: 3802,
} as const;

export type ArrayElementType = keyof typeof ELEMENT_OIDS;

const TWO_32 = 4_294_967_296;
const HEX = new Int8Array(128).fill(-1);
for (let i = 0; i < 16; i++) {
  HEX["0123456789abcdef".charCodeAt(i)] = i;
  HEX["0123456789ABCDEF".charCodeAt(i)] = i;
}

function fixedWidth(type: ArrayElementType): number {
  switch (type) {
    case "uuid":
      return 16;
    case "bigint":
    case "int8":
      return 8;
    case "int":
    case "int4":
    case "integer":
      return 4;
    case "boolean":
    case "bool":
      return 1;
    default:
      return -1;
  }
}

function refuse(type: ArrayElementType, index: number, value: unknown): never {
  throw new TypeError(`${type}[] parameter: element ${index} is not a valid ${type}: ${String(value).slice(0, 60)}`);
}

/** The element's bytes for a variable-width type (text, jsonb, bytea). */
function variableBytes(type: ArrayElementType, value: unknown, index: number): Buffer | string {
  if (type === "bytea") {
    if (!Buffer.isBuffer(value)) refuse(type, index, value);
    return value;
  }
  if (typeof value === "string") return value;
  // As node-postgres's text form would write them: jsonb from an object, text from a number.
  if (type === "jsonb" && typeof value === "object") return JSON.stringify(value);
  if (type === "text" && (typeof value === "number" || typeof value === "bigint" || typeof value === "boolean")) return String(value);
  return refuse(type, index, value);
}

function writeUuid(buf: Buffer, at: number, value: unknown, index: number): void {
  if (typeof value !== "string" || value.length !== 36) refuse("uuid", index, value);
  let out = at;
  for (let i = 0; i < 36; ) {
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (value.charCodeAt(i) !== 45) refuse("uuid", index, value);
      i++;
      continue;
    }
    const hi = HEX[value.charCodeAt(i)] ?? -1;
    const lo = HEX[value.charCodeAt(i + 1)] ?? -1;
    if (hi < 0 || lo < 0) refuse("uuid", index, value);
    buf[out++] = (hi << 4) | lo;
    i += 2;
  }
}

function writeFixed(type: ArrayElementType, buf: Buffer, at: number, value: unknown, index: number): void {
  switch (type) {
    case "uuid":
      writeUuid(buf, at, value, index);
      return;
    case "bigint":
    case "int8": {
      if (typeof value === "number" && Number.isSafeInteger(value)) {
        const high = Math.floor(value / TWO_32);
        buf.writeInt32BE(high, at);
        buf.writeUInt32BE(value - high * TWO_32, at + 4);
        return;
      }
      // Offsets come as decimal strings; writeBigInt64BE refuses a value outside 64 bits.
      if (typeof value === "bigint") buf.writeBigInt64BE(value, at);
      else if (typeof value === "string" && /^-?\d{1,19}$/.test(value)) buf.writeBigInt64BE(BigInt(value), at);
      else refuse(type, index, value);
      return;
    }
    case "int":
    case "int4":
    case "integer": {
      const n = typeof value === "string" && /^-?\d{1,10}$/.test(value) ? Number(value) : value;
      if (typeof n !== "number" || !Number.isInteger(n) || n < -2_147_483_648 || n > 2_147_483_647) refuse(type, index, value);
      buf.writeInt32BE(n, at);
      return;
    }
    default:
      if (typeof value !== "boolean") refuse(type, index, value);
      buf[at] = value ? 1 : 0;
  }
}

/**
 * One-dimensional array in array_recv's binary form: dimensions, a has-nulls flag, the element
 * type's OID, the length and lower bound (1), then each element as a 4-byte length (-1 for NULL)
 * and its binary value. `null` and `undefined` elements are NULL.
 */
export function encodeArray(type: ArrayElementType, values: readonly unknown[]): Buffer {
  if (!Object.hasOwn(ELEMENT_OIDS, type)) throw new TypeError(`no binary array encoding for ${String(type)}[]`);
  const oid = ELEMENT_OIDS[type];
  if (values.length === 0) {
    const empty = Buffer.alloc(12);
    empty.writeUInt32BE(oid, 8);
    return empty;
  }
  const width = fixedWidth(type);
  const parts: (Buffer | string | null)[] = width < 0 ? new Array(values.length) : [];
  let size = 20;
  let nulls = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) {
      nulls++;
      size += 4;
      if (width < 0) parts[i] = null;
      continue;
    }
    if (width >= 0) {
      size += 4 + width;
      continue;
    }
    const bytes = variableBytes(type, v, i);
    parts[i] = bytes;
    size += 4 + (typeof bytes === "string" ? Buffer.byteLength(bytes) : bytes.length) + (type === "jsonb" ? 1 : 0);
  }
  const buf = Buffer.allocUnsafe(size);
  buf.writeInt32BE(1, 0);
  buf.writeInt32BE(nulls > 0 ? 1 : 0, 4);
  buf.writeUInt32BE(oid, 8);
  buf.writeInt32BE(values.length, 12);
  buf.writeInt32BE(1, 16);
  let at = 20;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) {
      buf.writeInt32BE(-1, at);
      at += 4;
      continue;
    }
    if (width >= 0) {
      buf.writeInt32BE(width, at);
      writeFixed(type, buf, at + 4, v, i);
      at += 4 + width;
      continue;
    }
    const bytes = parts[i] as Buffer | string;
    const lengthAt = at;
    at += 4;
    // jsonb's binary form is a version byte (1) before the JSON text.
    if (type === "jsonb") buf[at++] = 1;
    at += typeof bytes === "string" ? buf.write(bytes, at, "utf8") : bytes.copy(buf, at);
    buf.writeInt32BE(at - lengthAt - 4, lengthAt);
  }
  return buf;
}

const ARRAY_CAST = /\$(\d+)::(\w+)\[\]/g;
/** Statement texts are few (a round's write varies only in which parts it has); the bound is a guard. */
const castsByText = new Map<string, ReadonlyMap<number, ArrayElementType>>();
const CASTS_KEPT = 1_000;

/** The element type of each $n the text casts to an array this encoder writes (0-based index). */
export function arrayCasts(text: string): ReadonlyMap<number, ArrayElementType> {
  let casts = castsByText.get(text);
  if (!casts) {
    const found = new Map<number, ArrayElementType>();
    for (const m of text.matchAll(ARRAY_CAST)) {
      const type = m[2]?.toLowerCase() ?? "";
      if (Object.hasOwn(ELEMENT_OIDS, type)) found.set(Number(m[1]) - 1, type as ArrayElementType);
    }
    casts = found;
    if (castsByText.size >= CASTS_KEPT) castsByText.clear();
    castsByText.set(text, casts);
  }
  return casts;
}

/**
 * The values for `text` with every JS array whose parameter the text casts to an array type
 * ($n::text[], $n::uuid[], ...) in its binary form; other values as given.
 */
export function boundValues(text: string, values: readonly unknown[]): unknown[] {
  const casts = arrayCasts(text);
  return values.map((v, i) => {
    const type = casts.get(i);
    return type !== undefined && Array.isArray(v) ? encodeArray(type, v) : v;
  });
}

/** A query config for `statement` (a named one keeps its name) with its array values in binary form. */
export function bound(statement: string | { readonly name?: string; readonly text: string }, values: readonly unknown[]): pg.QueryConfig {
  const s = typeof statement === "string" ? { text: statement } : statement;
  return { ...s, values: boundValues(s.text, values) };
}
