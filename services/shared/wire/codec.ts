/**
 * Avro codec for hashrelay's records, using Avro single-object encoding
 * (0xC3 0x01, 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema, then the body).
 *
 * The writer's fingerprint picks the writer schema among the current and historical versions
 * under schemas/, and a resolver reads older bodies into the current shape, so consumers keep
 * working while producers upgrade.
 *
 * Frozen contract: every stored or queued record, and every partner decoding a feed, depends on
 * these bytes (the 0xC3 0x01 marker, the fingerprint, the schema set). Never edit a schema in
 * place or change the encoding; add a new schema version under schemas/history/ that stays
 * backward compatible (schemas/schemas.test.ts checks it), so old bodies keep decoding.
 */
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import avro from "avsc";
import { CodecError, ValidationError } from "../errors.ts";
import { fingerprintBytes } from "./fingerprint.ts";
import type { RecordName, RecordOf } from "./records.ts";

export const SCHEMAS_DIR = fileURLToPath(new URL("../../../schemas/", import.meta.url));

const MAGIC = Buffer.from([0xc3, 0x01]);
const HEADER_LENGTH = MAGIC.length + 8;

/** Schema file of each record, relative to schemas/. */
export const SCHEMA_FILES: Record<RecordName, string> = {
  Submission: "submission.avsc",
  CanonicalRecord: "canonical-record.avsc",
  FeedRecord: "feed-record.avsc",
  Rejection: "rejection.avsc",
  AuditEvent: "audit-event.avsc",
};

export const RECORD_NAMES = Object.keys(SCHEMA_FILES) as RecordName[];

/** One known version of a record schema. */
export interface SchemaVersion {
  readonly name: RecordName;
  /** "current" or the history file name, e.g. "v1". */
  readonly version: string;
  readonly type: avro.Type;
  /** Hex of the 8 fingerprint bytes, as they appear on the wire. */
  readonly fingerprint: string;
}

export interface Decoded<N extends RecordName> {
  readonly value: RecordOf<N>;
  /** The schema the producer wrote with (needed to check signatures over the writer's bytes). */
  readonly writer: SchemaVersion;
}

function readSchema(path: string): avro.Schema {
  return JSON.parse(readFileSync(path, "utf8")) as avro.Schema;
}

function versionOf(name: RecordName, version: string, schema: avro.Schema): SchemaVersion {
  const type = avro.Type.forSchema(schema);
  const canonical = JSON.stringify(type.schema());
  return { name, version, type, fingerprint: fingerprintBytes(canonical).toString("hex") };
}

/** Loads every schema version found under a schemas directory. */
export function loadSchemaVersions(dir: string = SCHEMAS_DIR): {
  current: Map<RecordName, SchemaVersion>;
  history: SchemaVersion[];
} {
  const current = new Map<RecordName, SchemaVersion>();
  const history: SchemaVersion[] = [];
  for (const name of RECORD_NAMES) {
    current.set(name, versionOf(name, "current", readSchema(join(dir, SCHEMA_FILES[name]))));
  }
  const historyDir = join(dir, "history");
  let entries: string[] = [];
  try {
    entries = readdirSync(historyDir);
  } catch {
    entries = [];
  }
  for (const file of entries.sort()) {
    // history/<Name>.<version>.avsc
    const match = /^([A-Za-z]+)\.([A-Za-z0-9_-]+)\.avsc$/.exec(file);
    if (!match) continue;
    const name = match[1] as RecordName;
    if (!RECORD_NAMES.includes(name)) continue;
    history.push(versionOf(name, match[2] as string, readSchema(join(historyDir, file))));
  }
  return { current, history };
}

export class AvroCodec {
  private readonly current: Map<RecordName, SchemaVersion>;
  private readonly byFingerprint = new Map<string, SchemaVersion>();
  private readonly resolvers = new Map<string, avro.Resolver>();

  constructor(versions = loadSchemaVersions()) {
    this.current = versions.current;
    for (const v of [...versions.history, ...versions.current.values()]) {
      this.byFingerprint.set(v.fingerprint, v);
    }
  }

  schema(name: RecordName): SchemaVersion {
    const v = this.current.get(name);
    if (!v) throw new CodecError("UNKNOWN_SCHEMA", `no schema named ${name}`);
    return v;
  }

  /** Encodes with the current schema; invalid values are refused with the offending path. */
  encode<N extends RecordName>(name: N, value: RecordOf<N>): Buffer {
    const { type, fingerprint } = this.schema(name);
    assertValid(type, value, name);
    return Buffer.concat([MAGIC, Buffer.from(fingerprint, "hex"), type.toBuffer(value)]);
  }

  /** Decodes a single-object-encoded record, resolving older writer schemas to the current one. */
  decode<N extends RecordName>(name: N, bytes: Uint8Array): Decoded<N> {
    const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (buf.length < HEADER_LENGTH || buf[0] !== MAGIC[0] || buf[1] !== MAGIC[1]) {
      throw new CodecError("BAD_MAGIC", `not Avro single-object encoding (${buf.length} bytes)`);
    }
    const fingerprint = buf.subarray(2, HEADER_LENGTH).toString("hex");
    const writer = this.byFingerprint.get(fingerprint);
    if (!writer) throw new CodecError("UNKNOWN_SCHEMA", `unknown writer schema fingerprint ${fingerprint}`);
    if (writer.name !== name) {
      throw new CodecError("UNKNOWN_SCHEMA", `expected ${name}, got a ${writer.name} record`);
    }
    const reader = this.schema(name);
    // Hostile-input guard: avsc trusts block counts, so check the body's shape first.
    checkBounds(writer.type, buf, HEADER_LENGTH, name);
    let result: { value: unknown; offset: number };
    try {
      result =
        writer.fingerprint === reader.fingerprint
          ? reader.type.decode(buf, HEADER_LENGTH)
          : reader.type.decode(buf, HEADER_LENGTH, this.resolver(reader, writer));
    } catch (err) {
      throw new CodecError("MALFORMED_AVRO", `cannot decode ${name}: ${(err as Error).message}`, { cause: err });
    }
    if (result.offset !== buf.length) {
      throw new CodecError(
        "MALFORMED_AVRO",
        result.offset < 0 ? `truncated ${name} body` : `${buf.length - result.offset} trailing bytes after ${name}`,
      );
    }
    return { value: result.value as RecordOf<N>, writer };
  }

  private resolver(reader: SchemaVersion, writer: SchemaVersion): avro.Resolver {
    const key = `${reader.fingerprint}<-${writer.fingerprint}`;
    let resolver = this.resolvers.get(key);
    if (!resolver) {
      resolver = reader.type.createResolver(writer.type);
      this.resolvers.set(key, resolver);
    }
    return resolver;
  }
}

// ---- bounds check before decoding (hostile input) --------------------------------------------
//
// avsc trusts the item count of each array or map block: a body of a few bytes claiming 2^31
// hashes makes it run new Array(2^31) and loop that many times until the process runs out of
// memory, and a smaller claim still costs seconds and much memory before failing as truncated. So
// decode first walks the body over the writer schema without building anything, and refuses
// (MALFORMED_AVRO) a block count the bytes left cannot hold (every item takes at least
// minEncodedSize bytes), a string or bytes length past the end, a bad union branch, and a
// varint longer than the 10 bytes of a 64-bit long. Everything it refuses avsc would also fail
// on (later, at great cost), except over-long varints, which no Avro encoder writes.

const MAX_VARINT_BYTES = 10;
/** Items of a type that encodes in zero bytes (null, an empty record) cannot be bounded by length; none in our schemas. */
const MAX_ZERO_BYTE_ITEMS = 1 << 16;

/** Where the check is in a body. */
class Cursor {
  zeroByteItems = 0;

  readonly buf: Buffer;
  pos: number;

  constructor(buf: Buffer, pos: number) {
    this.buf = buf;
    this.pos = pos;
  }

  fail(message: string): never {
    throw new CodecError("MALFORMED_AVRO", `${message} (at byte ${this.pos})`);
  }

  /** A zig-zag varint (as a float: exact to 2^53, which is all a count or length needs). */
  long(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      const b = this.buf[this.pos++];
      if (b === undefined) this.fail("truncated varint");
      value += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return value % 2 === 1 ? -(value + 1) / 2 : value / 2;
      scale *= 128;
    }
    return this.fail(`varint longer than ${MAX_VARINT_BYTES} bytes`);
  }

  take(n: number): void {
    if (n > this.buf.length - this.pos) this.fail(`truncated: ${n} bytes claimed, ${this.buf.length - this.pos} left`);
    this.pos += n;
  }

  /** Array or map blocks, each count checked against the bytes left before any item is walked. */
  blocks(min: number, item: Step): void {
    for (;;) {
      let n = this.long();
      if (n === 0) return;
      if (n < 0) {
        n = -n;
        this.long(); // the block's size in bytes, which avsc ignores too
      }
      const room = this.buf.length - this.pos;
      if (min <= 0) this.zeroByteItems += n;
      const fits = min > 0 ? n <= room / min : this.zeroByteItems <= MAX_ZERO_BYTE_ITEMS;
      if (!fits) this.fail(`a block claims ${n} items, more than the ${room} bytes left can hold`);
      for (let i = 0; i < n; i++) item(this);
    }
  }
}

type Step = (c: Cursor) => void;

const steps = new WeakMap<avro.Type, Step>();
const minSizes = new WeakMap<avro.Type, number>();

/** Fewest bytes any value of `type` encodes to. */
function minEncodedSize(type: avro.Type): number {
  const known = minSizes.get(type);
  if (known !== undefined) return known;
  minSizes.set(type, 0); // a recursive reference counts as 0 while its own size is worked out
  let size: number;
  if (type instanceof avro.types.LogicalType) size = minEncodedSize(type.underlyingType);
  else if (type instanceof avro.types.RecordType) size = type.fields.reduce((sum, f) => sum + minEncodedSize(f.type), 0);
  else if (type instanceof avro.types.FixedType) size = type.size;
  else if (type.typeName === "null") size = 0;
  else if (type.typeName === "float") size = 4;
  else if (type.typeName === "double") size = 8;
  else size = 1; // boolean, int, long, enum, string, bytes, array, map, union: at least one byte
  minSizes.set(type, size);
  return size;
}

const skipLong: Step = (c) => void c.long();
const skipString: Step = (c) => {
  const length = c.long();
  if (length < 0) c.fail(`negative length ${length}`);
  c.take(length);
};

/** The check for one type, built once per type (like avsc's own readers) so it costs little per decode. */
function stepFor(type: avro.Type): Step {
  const known = steps.get(type);
  if (known) return known;
  // A recursive schema meets itself while being built: defer to the finished step.
  steps.set(type, (c) => (steps.get(type) as Step)(c));
  let step: Step;
  if (type instanceof avro.types.LogicalType) step = stepFor(type.underlyingType);
  else if (type instanceof avro.types.RecordType) {
    const fields = type.fields.map((f) => stepFor(f.type));
    step = (c) => {
      for (let i = 0; i < fields.length; i++) (fields[i] as Step)(c);
    };
  } else if (type instanceof avro.types.ArrayType) {
    const item = stepFor(type.itemsType);
    const min = minEncodedSize(type.itemsType);
    step = (c) => c.blocks(min, item);
  } else if (type instanceof avro.types.MapType) {
    const values = type.valuesType as avro.Type;
    const value = stepFor(values);
    const min = 1 + minEncodedSize(values);
    const entry: Step = (c) => {
      skipString(c);
      value(c);
    };
    step = (c) => c.blocks(min, entry);
  } else if (type instanceof avro.types.UnwrappedUnionType || type instanceof avro.types.WrappedUnionType) {
    const branches = type.types.map((t) => stepFor(t));
    step = (c) => {
      const index = c.long();
      const branch = branches[index];
      if (branch === undefined) return c.fail(`union branch ${index} out of range`);
      branch(c);
    };
  } else if (type instanceof avro.types.FixedType) {
    const size = type.size;
    step = (c) => c.take(size);
  } else {
    switch (type.typeName) {
      case "null":
        step = () => {};
        break;
      case "boolean":
        step = (c) => c.take(1);
        break;
      case "int":
      case "long":
      case "enum":
        step = skipLong;
        break;
      case "float":
        step = (c) => c.take(4);
        break;
      case "double":
        step = (c) => c.take(8);
        break;
      case "string":
      case "bytes":
        step = skipString;
        break;
      default:
        // A type this check does not know would let its bytes through unchecked: refuse loudly.
        step = (c) => c.fail(`no bounds check for Avro type ${type.typeName}`);
    }
  }
  steps.set(type, step);
  return step;
}

/** Throws CodecError (MALFORMED_AVRO) unless the body from `pos` has a plausible shape for `type`. */
function checkBounds(type: avro.Type, buf: Buffer, pos: number, name: string): void {
  try {
    stepFor(type)(new Cursor(buf, pos));
  } catch (err) {
    // Ours, or a stack overflow on a deeply nested body of a recursive schema (none of ours is).
    throw new CodecError("MALFORMED_AVRO", `cannot decode ${name}: ${err instanceof CodecError ? err.detail : (err as Error).message}`, {
      cause: err,
    });
  }
}

/** Throws a ValidationError naming the first field that does not fit the schema. */
export function assertValid(type: avro.Type, value: unknown, label: string): void {
  const problems: string[] = [];
  const ok = type.isValid(value, {
    errorHook: (path: string[], got: unknown) => {
      problems.push(`${path.join(".") || "(root)"}=${describe(got)}`);
    },
  });
  if (!ok) {
    throw new ValidationError("INVALID_FIELD", `${label} does not fit its schema: ${problems.slice(0, 5).join(", ")}`);
  }
}

function describe(value: unknown): string {
  if (value === undefined) return "missing";
  if (Buffer.isBuffer(value)) return `<${value.length} bytes>`;
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 40 ? `${text.slice(0, 40)}...` : text;
}

/**
 * Throws unless `reader` can read everything `writer` wrote (Avro schema resolution rules):
 * the check that keeps a schema change from stranding records already in Kafka.
 */
export function assertBackwardCompatible(reader: SchemaVersion, writer: SchemaVersion): void {
  try {
    reader.type.createResolver(writer.type);
  } catch (err) {
    throw new CodecError(
      "UNKNOWN_SCHEMA",
      `${reader.name} (${reader.version}) cannot read ${writer.name} ${writer.version}: ${(err as Error).message}`,
      { cause: err },
    );
  }
}
