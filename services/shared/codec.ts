/**
 * Avro codec for hashrelay's records, using Avro single-object encoding
 * (0xC3 0x01, 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema, then the body).
 *
 * The writer's fingerprint picks the writer schema among the current and historical versions
 * under schemas/, and a resolver reads older bodies into the current shape, so consumers keep
 * working while producers upgrade.
 */
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import avro from "avsc";
import { CodecError, ValidationError } from "./errors.ts";
import { fingerprintBytes } from "./fingerprint.ts";
import type { RecordName, RecordOf } from "./records.ts";

export const SCHEMAS_DIR = fileURLToPath(new URL("../../schemas/", import.meta.url));

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
