import { describe, expect, it } from "vitest";
import type { Submission } from "../shared/wire/records.ts";
import { randomHex, unsignedSubmission } from "../../test/support/fixtures.ts";
import { applySubmission, finaliseChanges, hashKey, isIdentity, reviseCarriers, settleDegenerate } from "./engine.ts";
import type { WorkingSet } from "./engine.ts";
import { emptyWorkingSet } from "./store.ts";

const policy = { authorities: new Set(["nca"]), confirmations: 2 };
const md5 = (value: string) => ({ alg: "md5" as const, value, quality: null });
const sha1 = (value: string) => ({ alg: "sha1" as const, value, quality: null });

const photodna = (byte: (i: number) => number) => ({
  alg: "photodna" as const,
  value: Buffer.from(Array.from({ length: 144 }, (_, i) => byte(i) & 0xff)).toString("base64"),
  quality: null,
});
const placeholder = photodna((i) => i * 7 + 3);
const pdq = (value: string, quality: number | null = 90) => ({ alg: "pdq" as const, value, quality });

/** What the store would load for a fresh hub: no record carries the submission's perceptual values yet. */
function freshStore(ws: WorkingSet, ...subs: Submission[]): void {
  for (const h of subs.flatMap((s) => s.hashes)) {
    if (isIdentity(h)) continue;
    if (!ws.perceptualStored.has(hashKey(h))) ws.perceptualStored.set(hashKey(h), 0);
    ws.degenerateKnown.add(hashKey(h));
  }
}

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

  it("never joins on a perceptual value: different MD5s with one identical PhotoDNA stay three records", () => {
    const ws = emptyWorkingSet();
    const subs = [1, 2, 3].map((i) => sub(`force-${i}`, [md5(randomHex(16)), placeholder]));
    freshStore(ws, ...subs);
    const ids = subs.map((s, i) => applySubmission(ws, s, i + 1)).map((o) => (o.kind === "applied" ? o.recordIds[0] : null));
    expect(new Set(ids).size).toBe(3);
    const out = finaliseChanges(ws, policy, 4);
    expect(out.filter((r) => !r.deleted && !r.mergedInto)).toHaveLength(3);
    for (const r of out) expect(r.hashes.map((h) => h.alg).sort()).toEqual(["md5", "photodna"]);
  });

  it("an equal PDQ does not join either, while an exact hash still merges a chain", () => {
    const ws = emptyWorkingSet();
    const shared = pdq(randomHex(32));
    const [a, b, c] = [randomHex(16), randomHex(16), randomHex(16)];
    const subs = [sub("force-a", [md5(a), shared]), sub("force-b", [md5(b), shared]), sub("force-c", [md5(c)])];
    freshStore(ws, ...subs);
    const ids = subs.map((s, i) => applySubmission(ws, s, i + 1)).map((o) => (o.kind === "applied" ? o.recordIds[0] : ""));
    expect(new Set(ids).size).toBe(3);
    // b and c are one picture (sha1 shared): merged. a shares only the PDQ with them: stays apart.
    applySubmission(ws, sub("nca", [md5(b), sha1(randomHex(20))]), 4);
    applySubmission(ws, sub("nca", [md5(c), sha1(randomHex(20))]), 5);
    const bridge = sha1(randomHex(20));
    applySubmission(ws, sub("force-d", [md5(b), md5(c), bridge]), 6);
    const out = finaliseChanges(ws, policy, 7);
    const live = out.filter((r) => !r.deleted && !r.mergedInto);
    expect(live).toHaveLength(2);
    expect(
      live
        .find((r) => r.recordId === ids[0])
        ?.hashes.map((h) => h.value)
        .sort(),
    ).toEqual([a, shared.value].sort());
    expect(out.find((r) => r.recordId === ids[2])?.mergedInto).toBe(ids[1]);
  });

  it("a RETRACT or a regrade through one MD5 changes only that record, not those sharing its PhotoDNA", () => {
    const ws = emptyWorkingSet();
    const values = [randomHex(16), randomHex(16), randomHex(16)];
    const subs = values.map((v, i) => sub(`force-${i}`, [md5(v), placeholder], { submittedAt: 1 }));
    freshStore(ws, ...subs);
    for (const s of subs) applySubmission(ws, s, 1);
    const first = finaliseChanges(ws, policy, 1);
    for (const r of ws.records.values()) r.changed = false;
    applySubmission(ws, sub("force-0", [md5(values[0] as string)], { op: "RETRACT", submittedAt: 2 }), 2);
    applySubmission(ws, sub("force-1", [md5(values[1] as string)], { submittedAt: 2, grade: { uk: "A", ics: "A1", vics: null } }), 2);
    const out = finaliseChanges(ws, policy, 2);
    expect(out).toHaveLength(2);
    const byMd5 = (v: string) => out.find((r) => r.hashes.some((h) => h.value === v));
    expect(byMd5(values[0] as string)?.deleted).toBe(true);
    expect(byMd5(values[1] as string)?.classification.uk).toBe("A");
    expect(byMd5(values[2] as string)).toBeUndefined();
    expect(first).toHaveLength(3);
  });

  it("a RETRACT with only a perceptual value reaches the retracting agency's records, nobody else's", () => {
    const ws = emptyWorkingSet();
    const subs = [sub("force-a", [placeholder], { submittedAt: 1 }), sub("force-b", [placeholder], { submittedAt: 1 })];
    freshStore(ws, ...subs);
    for (const s of subs) applySubmission(ws, s, 1);
    finaliseChanges(ws, policy, 1);
    for (const r of ws.records.values()) r.changed = false;
    expect(applySubmission(ws, sub("force-a", [placeholder], { op: "RETRACT", submittedAt: 2 }), 2).kind).toBe("applied");
    const out = finaliseChanges(ws, policy, 2);
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ deleted: true, provenance: { agencies: [] } });
    expect(applySubmission(ws, sub("force-c", [placeholder], { op: "RETRACT", submittedAt: 3 }), 3)).toMatchObject({ reason: "NOT_FOUND" });
  });

  it("low-quality PDQ and constant PhotoDNA are degenerate from the first record", () => {
    const ws = emptyWorkingSet();
    const [weak, zero] = [pdq(randomHex(32), 30), photodna(() => 0)];
    const s = sub("force-a", [md5(randomHex(16)), weak, zero, pdq(randomHex(32))]);
    freshStore(ws, s);
    applySubmission(ws, s, 1);
    const fresh = settleDegenerate(ws, 5, 1);
    expect(fresh.map((d) => [d.alg, d.reason]).sort()).toEqual([
      ["pdq", "LOW_QUALITY"],
      ["photodna", "CONSTANT"],
    ]);
    const [record] = finaliseChanges(ws, policy, 1);
    expect(record?.degenerate.map((d) => d.reason).sort()).toEqual(["CONSTANT", "LOW_QUALITY"]);
    expect(record?.hashes).toHaveLength(4); // the hub keeps what the agency sent
  });

  it("the record that brings a value to the threshold turns it SHARED, and every carrier gets a new revision", () => {
    const ws = emptyWorkingSet();
    const first = [1, 2].map((i) => sub(`force-${i}`, [md5(randomHex(16)), placeholder]));
    freshStore(ws, ...first);
    for (const s of first) applySubmission(ws, s, 1);
    expect(settleDegenerate(ws, 3, 1)).toEqual([]);
    expect(finaliseChanges(ws, policy, 1).every((r) => r.degenerate.length === 0)).toBe(true);
    for (const r of ws.records.values()) r.changed = false;

    applySubmission(ws, sub("force-3", [md5(randomHex(16)), placeholder]), 2);
    const fresh = settleDegenerate(ws, 3, 2);
    expect(fresh).toMatchObject([{ alg: "photodna", value: placeholder.value, reason: "SHARED", records: 3 }]);
    reviseCarriers(ws, new Set(fresh.map(hashKey)));
    const out = finaliseChanges(ws, policy, 2);
    expect(out).toHaveLength(3);
    for (const r of out) expect(r.degenerate).toEqual([{ alg: "photodna", value: placeholder.value, reason: "SHARED" }]);
    expect(out.filter((r) => r.revision === 2)).toHaveLength(2);
  });

  it("a merge of two carriers counts them once", () => {
    const ws = emptyWorkingSet();
    const [a, b] = [randomHex(16), randomHex(16)];
    const subs = [sub("force-a", [md5(a), placeholder]), sub("force-b", [md5(b), placeholder])];
    freshStore(ws, ...subs);
    for (const s of subs) applySubmission(ws, s, 1);
    applySubmission(ws, sub("force-c", [md5(a), md5(b)]), 2);
    expect(settleDegenerate(ws, 2, 2)).toEqual([]);
  });
});
