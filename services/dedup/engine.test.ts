import { describe, expect, it } from "vitest";
import type { Submission } from "../shared/wire/records.ts";
import { randomHex, unsignedSubmission } from "../../test/support/fixtures.ts";
import { applySubmission, finaliseChanges } from "./engine.ts";
import { emptyWorkingSet } from "./store.ts";

const policy = { authorities: new Set(["nca"]), confirmations: 2 };
const md5 = (value: string) => ({ alg: "md5" as const, value, quality: null });
const sha1 = (value: string) => ({ alg: "sha1" as const, value, quality: null });

function sub(agencyId: string, hashes: Submission["hashes"], extra: Partial<Submission> = {}): Submission {
  return { ...unsignedSubmission({ agencyId, hashes }), signature: Buffer.alloc(64), ...extra };
}

describe("dedup engine", () => {
  it("joins submissions sharing any exact hash into one record and counts agreement", () => {
    const ws = emptyWorkingSet();
    const [a, b] = [randomHex(16), randomHex(20)];
    const r1 = applySubmission(ws, sub("force-a", [md5(a)], { grade: { uk: "B", ics: null, vics: null } }), 1);
    const r2 = applySubmission(ws, sub("force-b", [md5(a), sha1(b)], { grade: { uk: "B", ics: null, vics: null } }), 2);
    expect(r1.kind).toBe("applied");
    expect(r2).toEqual(r1.kind === "applied" ? { kind: "applied", recordIds: r1.recordIds } : null);
    const [record] = finaliseChanges(ws, policy, 3);
    expect(record).toMatchObject({ revision: 1, gradingStatus: "confirmed", confirmations: 2, deleted: false });
    expect(record?.hashes.map((h) => h.alg)).toEqual(["md5", "sha1"]);
    expect(record?.provenance.agencies).toEqual(["force-a", "force-b"]);
  });

  it("merges two records when a submission bridges them; the absorbed one points at the survivor", () => {
    const ws = emptyWorkingSet();
    const [a, b] = [randomHex(16), randomHex(16)];
    const first = applySubmission(ws, sub("force-a", [md5(a)]), 1);
    const second = applySubmission(ws, sub("force-b", [md5(b)]), 2);
    if (first.kind !== "applied" || second.kind !== "applied") throw new Error("setup failed");
    finaliseChanges(ws, policy, 2);
    for (const r of ws.records.values()) r.changed = false;
    applySubmission(ws, sub("force-c", [md5(a), md5(b)]), 3);
    const out = finaliseChanges(ws, policy, 3);
    const survivor = out.find((r) => r.recordId === first.recordIds[0]);
    const absorbed = out.find((r) => r.recordId === second.recordIds[0]);
    expect(absorbed).toMatchObject({ deleted: true, mergedInto: first.recordIds[0], hashes: [], revision: 2 });
    expect(survivor?.hashes).toHaveLength(2);
    expect(survivor?.provenance.agencies).toEqual(["force-a", "force-b", "force-c"]);
    expect(survivor?.revision).toBe(2);
  });

  it("a retraction removes only that agency's sighting; the last one withdraws the record", () => {
    const ws = emptyWorkingSet();
    const a = randomHex(16);
    applySubmission(ws, sub("force-a", [md5(a)], { submittedAt: 1 }), 1);
    applySubmission(ws, sub("force-b", [md5(a)], { submittedAt: 1 }), 1);
    applySubmission(ws, sub("force-a", [md5(a)], { op: "RETRACT", submittedAt: 2 }), 2);
    expect(finaliseChanges(ws, policy, 2)[0]).toMatchObject({ deleted: false, provenance: { agencies: ["force-b"] } });
    applySubmission(ws, sub("force-b", [md5(a)], { op: "RETRACT", submittedAt: 3 }), 3);
    expect(finaliseChanges(ws, policy, 3)[0]).toMatchObject({ deleted: true, revision: 2 });
  });

  it("refuses a retraction of an unknown hash and a submission older than the agency's sighting", () => {
    const ws = emptyWorkingSet();
    expect(applySubmission(ws, sub("force-a", [md5(randomHex(16))], { op: "RETRACT" }), 1)).toMatchObject({ reason: "NOT_FOUND" });
    const a = randomHex(16);
    applySubmission(ws, sub("force-a", [md5(a)], { submittedAt: 10 }), 10);
    expect(applySubmission(ws, sub("force-a", [md5(a)], { submittedAt: 5 }), 11)).toMatchObject({ reason: "STALE_SUBMISSION" });
  });

  it("keeps law-enforcement metadata in the restricted block only", () => {
    const ws = emptyWorkingSet();
    applySubmission(ws, sub("force-a", [md5(randomHex(16))]), 1);
    const [record] = finaliseChanges(ws, policy, 1);
    expect(record?.restricted.caseRefs).toEqual(["SYN-CASE-0001"]);
    expect(record?.restricted.graderRefs).toEqual(["grader-7"]);
  });
});
