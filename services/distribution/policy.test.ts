import { describe, expect, it } from "vitest";
import { sampleCanonicalRecord } from "../../test/support/fixtures.ts";
import { generateSigningKeyPair, privateKeyFromPem, publicKeyFromRaw } from "../shared/signing.ts";
import { manifestSignatureValid, signManifest } from "./exports.ts";
import type { ExportManifest } from "./exports.ts";
import { entitlement, extrasFor, planChanges } from "./policy.ts";
import type { FeedEntry, PartnerPolicy } from "./policy.ts";

const policy: PartnerPolicy = {
  partnerId: "p1", categories: ["A", "B"], minGradingStatus: "confirmed", algorithms: ["md5", "pdq"], scheme: "ics",
  extraFields: ["gradingStatus"], delivery: "kafka", feedPartitions: 2, version: 1,
};

describe("partner policy", () => {
  it("entitles by category and minimum grading status, maps to the scheme, and never guesses", () => {
    const r = sampleCanonicalRecord(); // B / B1, confirmed
    expect(entitlement(r, policy)).toEqual({ entitled: true, category: "B1" });
    expect(entitlement({ ...r, gradingStatus: "indicative" }, policy)).toMatchObject({ entitled: false, unmappable: false });
    expect(entitlement({ ...r, classification: { uk: "C", ics: null } }, policy)).toMatchObject({ entitled: false });
    expect(entitlement({ ...r, classification: { uk: "A", ics: null } }, policy)).toEqual({ entitled: false, unmappable: true });
    expect(entitlement({ ...r, classification: { uk: "A", ics: null } }, { ...policy, scheme: "vics" })).toEqual({ entitled: true, category: "1" });
    expect(entitlement({ ...r, deleted: true }, policy)).toMatchObject({ entitled: false });
  });

  it("grants only the listed extras; law-enforcement fields need an explicit grant", () => {
    const r = sampleCanonicalRecord();
    expect(extrasFor(r, policy)).toEqual({ gradingStatus: "confirmed" });
    expect(extrasFor(r, { ...policy, extraFields: ["caseRefs", "isDistributed"] })).toEqual({ caseRefs: "SYN-CASE-0001", isDistributed: "true" });
  });

  it("plans upserts for granted algorithms and removes what the record no longer grants", () => {
    const r = sampleCanonicalRecord();
    const first = planChanges(r, policy, []);
    expect(first.changes.map((c) => `${c.op}:${c.entry.alg}`).sort()).toEqual(["UPSERT:md5", "UPSERT:pdq"]);
    const held: FeedEntry[] = first.changes.map((c) => c.entry);
    expect(planChanges(r, policy, held).changes).toEqual([]);
    const withdrawn = planChanges({ ...r, revision: 4, deleted: true }, policy, held);
    expect(withdrawn.changes.map((c) => c.op)).toEqual(["REMOVE", "REMOVE"]);
    const regraded = planChanges({ ...r, revision: 5, classification: { uk: "C", ics: null } }, policy, held);
    expect(regraded.changes.every((c) => c.op === "REMOVE")).toBe(true);
  });
});


describe("export manifests", () => {
  it("sign every field, nested chain heads included", () => {
    const pair = generateSigningKeyPair();
    const m: ExportManifest = {
      partnerId: "p1", kind: "snapshot", object: "feeds/p1/s.jsonl.gz", sha256: "ab", count: 2,
      heads: { "0": { seq: 5, digest: "00" } }, createdAt: "2026-01-01T00:00:00Z", keyId: "hub:1",
    };
    const signed = signManifest(m, privateKeyFromPem(pair.privateKeyPem));
    const pub = publicKeyFromRaw(pair.publicKey);
    expect(manifestSignatureValid(signed, pub)).toBe(true);
    expect(manifestSignatureValid({ ...signed, heads: { "0": { seq: 6, digest: "00" } } }, pub)).toBe(false);
    expect(manifestSignatureValid({ ...signed, count: 3 }, pub)).toBe(false);
  });
});
