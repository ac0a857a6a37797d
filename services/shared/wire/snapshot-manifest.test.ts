import { describe, expect, it } from "vitest";
import { generateSigningKeyPair, privateKeyFromPem, publicKeyFromRaw } from "./signing.ts";
import { manifestSignatureValid, signManifest } from "./snapshot-manifest.ts";
import type { ExportManifest } from "./snapshot-manifest.ts";
describe("export manifests", () => {
  it("sign every field, nested chain heads included", () => {
    const pair = generateSigningKeyPair();
    const m: ExportManifest = {
      partnerId: "p1",
      kind: "snapshot",
      object: "feeds/p1/s.jsonl.gz",
      sha256: "ab",
      count: 2,
      heads: { "0": { seq: 5, digest: "00" } },
      createdAt: "2026-01-01T00:00:00Z",
      keyId: "hub:1",
    };
    const signed = signManifest(m, privateKeyFromPem(pair.privateKeyPem));
    const pub = publicKeyFromRaw(pair.publicKey);
    expect(manifestSignatureValid(signed, pub)).toBe(true);
    expect(manifestSignatureValid({ ...signed, heads: { "0": { seq: 6, digest: "00" } } }, pub)).toBe(false);
    expect(manifestSignatureValid({ ...signed, count: 3 }, pub)).toBe(false);
  });
});
