/**
 * Hostile input for AvroCodec.decode (issue 7): random bytes, every truncation, every bit flip,
 * boundary bytes at every position, huge block counts and lengths, of every record and every
 * schema version. decode may only return or throw CodecError with BAD_MAGIC, UNKNOWN_SCHEMA or
 * MALFORMED_AVRO: never a TypeError or RangeError, never a hang, never a huge allocation.
 */
import { describe, expect, it } from "vitest";
import { AvroCodec, loadSchemaVersions } from "../../services/shared/codec.ts";
import type { SchemaVersion } from "../../services/shared/codec.ts";
import { CodecError } from "../../services/shared/errors.ts";
import type { RecordName } from "../../services/shared/records.ts";
import { HUGE_COUNTS, sampleValues, varint } from "./scenarios.ts";
import { bitFlips, byteSets, HeapWatch, havoc, int, MB, pick, prng, randomBuffer, runIsolated, show, splices, truncations, withinBudget } from "./support.ts";

const codec = new AvroCodec();
const versions = loadSchemaVersions();
const NAMES = [...versions.current.keys()];
const ALL_VERSIONS: SchemaVersion[] = [...versions.current.values(), ...versions.history];
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

/** Valid encodings to mutate: the fixtures, plus avsc's random values of every version (current and history). */
function validEncodings(perVersion: number): { name: RecordName; bytes: Buffer }[] {
  const values = sampleValues();
  const out = NAMES.map((name) => ({ name, bytes: codec.encode(name, values[name] as never) }));
  for (const v of ALL_VERSIONS) {
    for (let i = 0; i < perVersion; i++) out.push({ name: v.name, bytes: Buffer.concat([headerOf(v), v.type.toBuffer(v.type.random())]) });
  }
  return out;
}

describe("AvroCodec.decode: hostile bytes", () => {
  it("random bytes, bare and behind valid headers of every schema version, only ever give codec reasons", async () => {
    const rng = prng();
    const counts: Record<string, number> = {};
    await withinBudget(10_000, () => {
      for (let i = 0; i < 6000; i++) {
        const name = pick(rng, NAMES);
        const body = randomBuffer(rng, int(rng, 300));
        let bytes: Buffer;
        switch (i % 4) {
          case 0:
            bytes = body;
            break;
          case 1:
            bytes = Buffer.concat([Buffer.from([0xc3, 0x01]), body]);
            break;
          default:
            // A known fingerprint (any record, any version): the body is random Avro for that schema.
            bytes = Buffer.concat([headerOf(pick(rng, ALL_VERSIONS)), body]);
        }
        const outcome = attempt(name, bytes);
        counts[outcome] = (counts[outcome] ?? 0) + 1;
      }
    });
    // Every class of refusal was reached.
    for (const reason of CODEC_REASONS) expect(counts[reason], JSON.stringify(counts)).toBeGreaterThan(0);
  });

  it("every truncation, every bit flip and boundary bytes at every position of valid encodings", async () => {
    const rng = prng();
    const seen = new Set<string>();
    await withinBudget(15_000, () => {
      for (const { name, bytes } of validEncodings(2)) {
        for (const t of truncations(bytes)) seen.add(attempt(name, t));
        for (const f of bitFlips(bytes)) seen.add(attempt(name, f));
        for (const b of byteSets(bytes, [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff])) seen.add(attempt(name, b));
        for (let i = 0; i < 100; i++) seen.add(attempt(name, havoc(rng, bytes)));
        // Trailing garbage after a valid body.
        seen.add(attempt(name, Buffer.concat([bytes, Buffer.from([0])])));
      }
    });
    expect([...seen].sort()).toEqual(expect.arrayContaining(["BAD_MAGIC", "MALFORMED_AVRO", "UNKNOWN_SCHEMA", "decoded"]));
  });

  it("huge varints spliced in at every position (counts, lengths, union and enum indexes)", async () => {
    await withinBudget(15_000, () => {
      for (const { name, bytes } of validEncodings(1)) {
        for (const n of [...HUGE_COUNTS, -1, -(2 ** 62)]) {
          for (const s of splices(bytes.subarray(10), varint(n))) attempt(name, Buffer.concat([bytes.subarray(0, 10), s]));
        }
        // A varint that never ends (200 continuation bytes), and 11-byte varints.
        for (const s of splices(bytes.subarray(10), Buffer.alloc(200, 0xff))) attempt(name, Buffer.concat([bytes.subarray(0, 10), s]));
        for (const s of splices(bytes.subarray(10), Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]))) {
          attempt(name, Buffer.concat([bytes.subarray(0, 10), s]));
        }
      }
    });
  });

  it("a body claiming 2^31 hashes, 1e9 map entries or a 2 GiB string is refused at once, allocating nothing", () => {
    const sub = Buffer.concat([
      headerOf(codec.schema("Submission")),
      ...["s", "a", "k"].map((t) => Buffer.concat([varint(t.length), Buffer.from(t)])),
      varint(0),
      varint(0),
    ]);
    const audit = Buffer.concat([
      headerOf(codec.schema("AuditEvent")),
      ...["e"].map((t) => Buffer.concat([varint(1), Buffer.from(t)])),
      varint(1),
      ...["s", "a", "x", "k", "i"].map((t) => Buffer.concat([varint(1), Buffer.from(t)])),
      varint(0),
    ]);
    const cases: [RecordName, Buffer, RegExp][] = [
      ["Submission", Buffer.concat([sub, varint(2 ** 31)]), /claims 2147483648 items/],
      ["Submission", Buffer.concat([sub, varint(-(2 ** 31)), varint(16)]), /claims 2147483648 items/],
      ["Submission", Buffer.concat([sub, varint(1e9), Buffer.alloc(100, 2)]), /claims 1000000000 items/],
      ["AuditEvent", Buffer.concat([audit, varint(1e9)]), /claims 1000000000 items/],
      ["Submission", Buffer.concat([headerOf(codec.schema("Submission")), varint(2 ** 31)]), /truncated: 2147483648 bytes claimed/],
      ["Rejection", Buffer.concat([headerOf(codec.schema("Rejection")), varint(1), Buffer.from("r"), varint(2 ** 40)]), /truncated/],
    ];
    const heap = new HeapWatch();
    for (const [name, bytes, detail] of cases) {
      const start = performance.now();
      let caught: unknown;
      try {
        codec.decode(name, bytes);
      } catch (err) {
        caught = err;
      }
      heap.sample();
      expect(caught, show(bytes)).toBeInstanceOf(CodecError);
      expect((caught as CodecError).reason).toBe("MALFORMED_AVRO");
      expect((caught as CodecError).detail).toMatch(detail);
      expect(performance.now() - start).toBeLessThan(1000);
    }
    expect(heap.peak).toBeLessThan(16 * MB);
  });

  it("refuses varints longer than a 64-bit long's 10 bytes", () => {
    const bytes = Buffer.concat([headerOf(codec.schema("Rejection")), Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00])]);
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

  it("a map key \"__proto__\" pollutes nothing", () => {
    const event = { ...(sampleValues().AuditEvent as object), detail: JSON.parse('{"__proto__":"x","polluted":"yes"}') as Record<string, string> };
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

describe("AvroCodec.decode: bounded memory, checked in a worker with a 96 MB heap", () => {
  it("huge counts written over and spliced in at every position of every record and version", { timeout: 60_000 }, async () => {
    const run = await runIsolated("avroHugeCountsEverywhere", { maxOldMb: 96, timeoutMs: 45_000 });
    const s = run.result as { cases: number; outcomes: Record<string, number>; bad: string[] };
    expect(s.bad).toEqual([]);
    expect(s.cases).toBeGreaterThan(5000);
    expect(s.outcomes["MALFORMED_AVRO"]).toBeGreaterThan(0);
    expect(run.peakHeapBytes).toBeLessThan(64 * MB);
  });

  it("huge counts at the start of every array and map, and huge byte lengths", { timeout: 60_000 }, async () => {
    const run = await runIsolated("avroHugeCountsAtBlockStarts", { maxOldMb: 96, timeoutMs: 45_000 });
    const s = run.result as { cases: number; outcomes: Record<string, number>; bad: string[] };
    expect(s.bad).toEqual([]);
    expect(s.outcomes).toEqual({ MALFORMED_AVRO: s.cases });
    expect(run.ms).toBeLessThan(5000);
    expect(run.peakHeapBytes).toBeLessThan(32 * MB);
  });
});
