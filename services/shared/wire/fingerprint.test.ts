import { describe, expect, it } from "vitest";
import { crc64Avro, fingerprintBytes } from "./fingerprint.ts";

describe("CRC-64-AVRO", () => {
  // Reference values from other Avro implementations (Java SchemaNormalization, goavro).
  it("matches the published fingerprints of primitive schemas", () => {
    expect(crc64Avro(Buffer.from('"int"')).toString(16)).toBe("7275d51a3f395c8f");
    expect(crc64Avro(Buffer.from('"string"')).toString(16)).toBe("8f014872634503c7");
  });

  it("writes the fingerprint little-endian, as single-object encoding requires", () => {
    expect(fingerprintBytes('"int"').toString("hex")).toBe("8f5c393f1ad57572");
  });
});
