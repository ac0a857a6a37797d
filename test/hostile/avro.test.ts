/**
 * Hostile input for AvroCodec.decode: random bytes, every truncation, every bit flip,
 * boundary bytes at every position, huge block counts and lengths, of every record and every
 * schema version. decode may only return or throw CodecError with BAD_MAGIC, UNKNOWN_SCHEMA or
 * MALFORMED_AVRO: never a TypeError or RangeError, never a hang, never a huge allocation.
 */
import { describe, expect, it } from "vitest";
import { AvroCodec, loadSchemaVersions } from "../../services/shared/wire/codec.ts";
import type { SchemaVersion } from "../../services/shared/wire/codec.ts";
import { CodecError } from "../../services/shared/errors.ts";
import type { RecordName } from "../../services/shared/wire/records.ts";
import { sampleValues, varint } from "./scenarios.ts";
import { MB, runIsolated, show } from "./support.ts";
import type { IsolatedResult } from "./support.ts";

const codec = new AvroCodec();
const versions = loadSchemaVersions();
const NAMES = [...versions.current.keys()];
const CODEC_REASONS = ["BAD_MAGIC", "UNKNOWN_SCHEMA", "MALFORMED_AVRO"];

/** Decodes and checks the only allowed outcomes; returns the reason, or "decoded". */
function attempt(name: RecordName, bytes: Buffer): string {
  try {
    codec.decode(name, bytes);
    return "decoded";
  } catch (err) {
    if (!(err instanceof CodecError)) {
      throw new Error(`decode(${name}) threw ${(err as Error).name}: ${(err as Error).message} — input ${show(bytes)}`, { cause: err });
    }
    if (!CODEC_REASONS.includes(err.reason)) throw new Error(`decode(${name}) gave reason ${err.reason} — input ${show(bytes)}`);
    return err.reason;
  }
}

function headerOf(v: SchemaVersion): Buffer {
  return Buffer.concat([Buffer.from([0xc3, 0x01]), Buffer.from(v.fingerprint, "hex")]);
}

interface Summary {
  cases: number;
  outcomes: Record<string, number>;
  bad: string[];
}

/**
 * The hostile families run in a child process with a 96 MB heap and a deadline (runIsolated): without
 * the bounds check, a body claiming 2^31 hashes runs the decoder out of memory, and that must fail the
 * test, not take the test runner down.
 */
let families: Record<string, Promise<IsolatedResult>> | undefined;

async function family(name: string, budgetMs: number): Promise<Summary & { details?: string[] }> {
  families ??= runIsolated(["avroRandomBytes", "avroMutations", "avroHugeCountsEverywhere", "avroHugeCountsAtBlockStarts"], {
    maxOldMb: 96,
    timeoutMs: 50_000,
  });
  const run = await (families[name] as Promise<IsolatedResult>);
  const s = run.result as Summary & { details?: string[] };
  expect(s.bad, `inputs that broke the rules:\n${s.bad.join("\n")}`).toEqual([]);
  expect(run.ms, `${name} took ${Math.round(run.ms)} ms (a hang?)`).toBeLessThan(budgetMs);
  expect(run.peakHeapBytes, `${name} peak heap ${Math.round(run.peakHeapBytes / MB)} MB`).toBeLessThan(64 * MB);
  return s;
}

describe("AvroCodec.decode: hostile bytes (in a child process with a 96 MB heap)", () => {
  it("6000 random bodies, bare and behind valid headers of every schema version, only ever give codec reasons", {
    timeout: 60_000,
  }, async () => {
    const s = await family("avroRandomBytes", 10_000);
    for (const reason of CODEC_REASONS) expect(s.outcomes[reason], JSON.stringify(s.outcomes)).toBeGreaterThan(0);
  });

  it("every truncation, every bit flip, boundary bytes at every position and havoc of valid encodings", { timeout: 60_000 }, async () => {
    const s = await family("avroMutations", 15_000);
    expect(s.cases).toBeGreaterThan(20_000);
    expect(Object.keys(s.outcomes).sort()).toEqual(["BAD_MAGIC", "MALFORMED_AVRO", "UNKNOWN_SCHEMA", "decoded"]);
  });

  it("huge counts and endless varints written over and spliced in at every position of every record and version", {
    timeout: 60_000,
  }, async () => {
    const s = await family("avroHugeCountsEverywhere", 15_000);
    expect(s.cases).toBeGreaterThan(10_000);
    expect(s.outcomes["MALFORMED_AVRO"]).toBeGreaterThan(0);
  });

  it("2^31 hashes, 1e9 map entries, 2^62-byte strings claimed where each array, map and bytes starts: refused at once", {
    timeout: 60_000,
  }, async () => {
    const s = await family("avroHugeCountsAtBlockStarts", 5_000);
    expect(s.outcomes).toEqual({ MALFORMED_AVRO: s.cases });
    expect(s.details?.[0]).toMatch(
      /^MALFORMED_AVRO: cannot decode Submission: a block claims 2147483648 items, more than the 0 bytes left can hold/,
    );
  });
});

describe("AvroCodec.decode: hostile bytes (in process)", () => {
  it("refuses varints longer than a 64-bit long's 10 bytes", () => {
    const bytes = Buffer.concat([
      headerOf(codec.schema("Rejection")),
      Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]),
    ]);
    expect(attempt("Rejection", bytes)).toBe("MALFORMED_AVRO");
  });

  it("decodes a record inside a larger buffer (a Uint8Array view) without reading outside it", () => {
    const values = sampleValues();
    for (const name of NAMES) {
      const bytes = codec.encode(name, values[name] as never);
      const big = new Uint8Array(bytes.length + 64).fill(0x02);
      big.set(bytes, 32);
      expect(codec.decode(name, new Uint8Array(big.buffer, 32, bytes.length)).value).toEqual(values[name]);
      // The view cut one byte short must not borrow the byte after it.
      expect(attempt(name, Buffer.from(big.buffer, 32, bytes.length - 1))).toBe("MALFORMED_AVRO");
    }
  });

  it('a map key "__proto__" pollutes nothing', () => {
    const event = {
      ...(sampleValues().AuditEvent as object),
      detail: JSON.parse('{"__proto__":"x","polluted":"yes"}') as Record<string, string>,
    };
    const decoded = codec.decode("AuditEvent", codec.encode("AuditEvent", event as never)).value;
    expect(Object.getPrototypeOf(decoded.detail)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();
    expect(decoded.detail["polluted"]).toBe("yes");
  });
});

describe("AvroCodec.decode: the bounds check refuses nothing valid", () => {
  it("random valid values of every current schema decode and re-encode to the same bytes", () => {
    for (const name of NAMES) {
      const { type } = codec.schema(name);
      for (let i = 0; i < 200; i++) {
        const bytes = Buffer.concat([headerOf(codec.schema(name)), type.toBuffer(type.random())]);
        const decoded = codec.decode(name, bytes);
        expect(Buffer.concat([headerOf(codec.schema(name)), type.toBuffer(decoded.value)])).toEqual(bytes);
      }
    }
  });

  it("random valid values of every historical schema decode through the resolver", () => {
    for (const v of versions.history) {
      for (let i = 0; i < 200; i++) {
        const decoded = codec.decode(v.name, Buffer.concat([headerOf(v), v.type.toBuffer(v.type.random())]));
        // (A history file identical to the current schema shares its fingerprint, and resolves as "current".)
        expect(decoded.writer.fingerprint).toBe(v.fingerprint);
      }
    }
  });

  it("arrays and maps written in several blocks, with negative counts and byte sizes, still decode", () => {
    // AuditEvent.detail as two blocks: {-1 entries, size} {1 entry} then 0.
    const event = sampleValues().AuditEvent as { detail: Record<string, string> };
    const plain = codec.encode("AuditEvent", { ...event, detail: {} } as never);
    const entry = (k: string, v: string) => Buffer.concat([varint(k.length), Buffer.from(k), varint(v.length), Buffer.from(v)]);
    const e1 = entry("a", "1");
    const blocks = Buffer.concat([varint(-1), varint(e1.length), e1, varint(1), entry("b", "2"), varint(0)]);
    const bytes = Buffer.concat([plain.subarray(0, plain.length - 1), blocks]);
    expect(codec.decode("AuditEvent", bytes).value.detail).toEqual({ a: "1", b: "2" });
  });
});
