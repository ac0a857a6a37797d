import { describe, expect, it } from "vitest";
import { industryPolicy, sampleCanonicalRecord } from "../../test/support/fixtures.ts";
import { entitlement, extrasFor, feedEntryFor, newlyGrantedWithheld } from "./policy.ts";
import type { PartnerPolicy } from "./policy.ts";

const policy: PartnerPolicy = industryPolicy("p1");

describe("partner policy", () => {
  it("entitles by category and minimum grading status, maps to the scheme, and never guesses", () => {
    const r = sampleCanonicalRecord(); // B / B1, confirmed
    expect(entitlement(r, policy)).toEqual({ entitled: true, category: "B1" });
    expect(entitlement({ ...r, gradingStatus: "indicative" }, policy)).toMatchObject({ entitled: false, unmappable: false });
    expect(entitlement({ ...r, classification: { uk: "C", ics: null } }, policy)).toMatchObject({ entitled: false });
    expect(entitlement({ ...r, classification: { uk: "A", ics: null } }, policy)).toEqual({ entitled: false, unmappable: true });
    expect(entitlement({ ...r, classification: { uk: "A", ics: null } }, { ...policy, scheme: "vics" })).toEqual({
      entitled: true,
      category: "1",
    });
    expect(entitlement({ ...r, deleted: true }, policy)).toMatchObject({ entitled: false });
  });

  it("grants only the listed extras; law-enforcement fields need an explicit grant", () => {
    const r = sampleCanonicalRecord();
    expect(extrasFor(r, policy)).toEqual({ gradingStatus: "confirmed" });
    expect(extrasFor(r, { ...policy, extraFields: ["caseRefs", "isDistributed"] })).toEqual({
      caseRefs: "SYN-CASE-0001",
      isDistributed: "true",
    });
  });

  it("asks for a second person only for withheld-by-default extras the current policy does not grant", () => {
    expect(newlyGrantedWithheld(undefined, ["gradingStatus", "caseRefs", "agencies"])).toEqual(["caseRefs", "agencies"]);
    expect(newlyGrantedWithheld({ extraFields: ["caseRefs"] }, ["caseRefs", "series"])).toEqual(["series"]);
    expect(newlyGrantedWithheld({ extraFields: ["caseRefs", "series"] }, ["caseRefs"])).toEqual([]); // narrowing
    expect(newlyGrantedWithheld({ extraFields: [] }, ["gradingStatus", "confirmations", "baseline"])).toEqual([]);
  });

  it("a record gives an entry for a hash of a granted algorithm while it is entitled", () => {
    const r = sampleCanonicalRecord();
    const key = (alg: string) => r.hashes.filter((h) => h.alg === alg).map((h) => `${h.alg}:${h.value}`)[0] as string;
    expect(feedEntryFor(r, policy, key("md5"))).toMatchObject({
      alg: "md5",
      recordId: r.recordId,
      revision: 3,
      category: "B1",
      extra: { gradingStatus: "confirmed" },
    });
    expect(feedEntryFor(r, policy, key("pdq"))).toMatchObject({ alg: "pdq" });
    expect(feedEntryFor(r, policy, key("sha1"))).toBeNull();
    expect(feedEntryFor(r, policy, "md5:0123")).toBeNull();
    expect(feedEntryFor({ ...r, deleted: true }, policy, key("md5"))).toBeNull();
    expect(feedEntryFor({ ...r, mergedInto: "00000000-0000-0000-0000-000000000001" }, policy, key("md5"))).toBeNull();
    expect(feedEntryFor({ ...r, classification: { uk: "C", ics: null } }, policy, key("md5"))).toBeNull();
  });
});
