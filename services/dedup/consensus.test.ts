import { describe, expect, it } from "vitest";
import { computeConsensus } from "./consensus.ts";
import type { SightingGrade } from "./consensus.ts";

const policy = { authorities: new Set(["nca"]), confirmations: 2 };
const s = (agencyId: string, uk: SightingGrade["uk"], extra: Partial<SightingGrade> = {}): SightingGrade => ({
  agencyId,
  op: "ASSERT",
  uk,
  ics: null,
  submittedAt: 1,
  ...extra,
});

describe("grade consensus", () => {
  it("one agency alone is indicative", () => {
    const c = computeConsensus([s("force-a", "B")], policy);
    expect(c).toMatchObject({ uk: "B", gradingStatus: "indicative", confirmations: 1, withdrawn: false });
  });

  it("two independent agencies agreeing confirm; the threshold is configurable", () => {
    expect(computeConsensus([s("force-a", "B"), s("force-b", "B")], policy).gradingStatus).toBe("confirmed");
    expect(computeConsensus([s("force-a", "B"), s("force-b", "B")], { ...policy, confirmations: 3 }).gradingStatus).toBe("indicative");
  });

  it("disagreement is disputed, the majority category wins and ties go to the more severe", () => {
    const majority = computeConsensus([s("force-a", "C"), s("force-b", "C"), s("force-c", "B")], policy);
    expect(majority).toMatchObject({ uk: "C", gradingStatus: "disputed", confirmations: 2 });
    const tie = computeConsensus([s("force-a", "C"), s("force-b", "A")], policy);
    expect(tie).toMatchObject({ uk: "A", gradingStatus: "disputed" });
  });

  it("the authority's grade wins over a majority and is confirmed", () => {
    const c = computeConsensus([s("force-a", "C"), s("force-b", "C"), s("nca", "A", { ics: "A1" })], policy);
    expect(c).toMatchObject({ uk: "A", ics: "A1", gradingStatus: "confirmed", baseline: true });
  });

  it("ungraded sightings do not vote", () => {
    const c = computeConsensus([s("force-a", "UNGRADED"), s("force-b", "B")], policy);
    expect(c).toMatchObject({ uk: "B", gradingStatus: "indicative" });
    expect(computeConsensus([s("force-a", "UNGRADED")], policy).uk).toBe("UNGRADED");
  });

  it("withdrawn when no asserting sighting remains, or when the authority retracts", () => {
    expect(computeConsensus([s("force-a", "B", { op: "RETRACT" })], policy).withdrawn).toBe(true);
    expect(computeConsensus([s("force-a", "B"), s("force-b", "B", { op: "RETRACT" })], policy).withdrawn).toBe(false);
    expect(computeConsensus([s("force-a", "B"), s("nca", "B", { op: "RETRACT" })], policy).withdrawn).toBe(true);
  });
});
