import { describe, expect, it } from "vitest";
import { AvroCodec } from "./codec.ts";
import { CodecError, ValidationError } from "../errors.ts";
import {
  sampleAuditEvent,
  sampleCanonicalRecord,
  sampleFeedRecord,
  samplePartnerFeedback,
  sampleRejection,
  unsignedSubmission,
} from "../../../test/support/fixtures.ts";
import type { RecordName, RecordOf } from "./records.ts";

const codec = new AvroCodec();

const samples: { [N in RecordName]: () => RecordOf<N> } = {
  Submission: () => ({ ...unsignedSubmission(), signature: Buffer.alloc(64, 7) }),
  CanonicalRecord: sampleCanonicalRecord,
  FeedRecord: sampleFeedRecord,
  Rejection: sampleRejection,
  AuditEvent: sampleAuditEvent,
  PartnerFeedback: samplePartnerFeedback,
};

function reasonOfThrow(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof CodecError || err instanceof ValidationError) return err.reason;
    throw err;
  }
  throw new Error("expected a throw");
}

describe("AvroCodec", () => {
  for (const name of Object.keys(samples) as RecordName[]) {
    it(`round-trips a ${name} with the single-object header`, () => {
      const value = samples[name]();
      const bytes = codec.encode(name, value as never);
      expect(bytes.subarray(0, 2)).toEqual(Buffer.from([0xc3, 0x01]));
      expect(bytes.subarray(2, 10).toString("hex")).toBe(codec.schema(name).fingerprint);
      const decoded = codec.decode(name, bytes);
      expect(decoded.value).toEqual(value);
      expect(decoded.writer.version).toBe("current");
    });
  }

  it("refuses bytes without the magic prefix", () => {
    expect(reasonOfThrow(() => codec.decode("Submission", Buffer.from('{"submissionId":"x"}')))).toBe("BAD_MAGIC");
    expect(reasonOfThrow(() => codec.decode("Submission", Buffer.alloc(0)))).toBe("BAD_MAGIC");
  });

  it("refuses an unknown writer fingerprint", () => {
    const bytes = codec.encode("AuditEvent", sampleAuditEvent());
    bytes.fill(0xab, 2, 10);
    expect(reasonOfThrow(() => codec.decode("AuditEvent", bytes))).toBe("UNKNOWN_SCHEMA");
  });

  it("refuses a record of another type", () => {
    const bytes = codec.encode("AuditEvent", sampleAuditEvent());
    expect(reasonOfThrow(() => codec.decode("Submission", bytes))).toBe("UNKNOWN_SCHEMA");
  });

  it("refuses truncated and over-long bodies", () => {
    const bytes = codec.encode("CanonicalRecord", sampleCanonicalRecord());
    expect(reasonOfThrow(() => codec.decode("CanonicalRecord", bytes.subarray(0, bytes.length - 3)))).toBe("MALFORMED_AVRO");
    expect(reasonOfThrow(() => codec.decode("CanonicalRecord", Buffer.concat([bytes, Buffer.from([0])])))).toBe("MALFORMED_AVRO");
  });

  it("refuses to encode a value that does not fit the schema, naming the field", () => {
    const bad = { ...sampleFeedRecord(), op: "DELETE" } as unknown as RecordOf<"FeedRecord">;
    expect(() => codec.encode("FeedRecord", bad)).toThrow(/op="DELETE"/);
    expect(reasonOfThrow(() => codec.encode("FeedRecord", bad))).toBe("INVALID_FIELD");
  });
});
