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

  /**
   * Chaos run 20261204210134 (seed 676011107): force-b's merge (md5 of one record, sha1 of another)
   * and its newer RETRACT of the other record sat on two partitions and were applied newest first;
   * the merge was dead-lettered STALE_SUBMISSION and the two records stayed apart. Applied in either
   * order, the submissions must leave the same records.
   */
  describe("an agency's merge applied after its newer sighting of one of the records", () => {
    const setup = () => {
      const ws = emptyWorkingSet();
      const r1 = { md5: md5(randomHex(16)), sha1: sha1(randomHex(20)) };
      const r2 = { md5: md5(randomHex(16)), sha1: sha1(randomHex(20)) };
      applySubmission(ws, sub("force-b", [r1.md5, r1.sha1], { submittedAt: 100 }), 100);
      applySubmission(ws, sub("force-c", [r1.md5], { submittedAt: 110 }), 110);
      applySubmission(ws, sub("force-c", [r2.md5, r2.sha1], { submittedAt: 200 }), 200);
      applySubmission(ws, sub("nca", [r2.sha1], { submittedAt: 210 }), 210);
      applySubmission(ws, sub("force-b", [r2.md5], { submittedAt: 220 }), 220);
      const merge = sub("force-b", [r2.md5, r1.sha1], { submittedAt: 290 });
      return { ws, r1, r2, merge };
    };
    /** The live records as hash sets with each agency's sighting: record ids differ between runs. */
    const live = (ws: WorkingSet) =>
      [...ws.records.values()]
        .filter((r) => !r.mergedInto)
        .map((r) => ({
          hashes: [...r.hashes.keys()].sort(),
          sightings: Object.fromEntries([...r.sightings].map(([a, s]) => [a, `${s.op}@${s.submittedAt}`]).sort()),
        }))
        .sort((a, b) => (a.hashes[0] ?? "").localeCompare(b.hashes[0] ?? ""));

    for (const retracted of ["r1", "r2"] as const) {
      it(`leaves what in-order application leaves (RETRACT through ${retracted}'s md5)`, () => {
        const inOrder = setup();
        const retract = sub("force-b", [inOrder[retracted].md5], { op: "RETRACT", submittedAt: 300 });
        expect(applySubmission(inOrder.ws, inOrder.merge, 300).kind).toBe("applied");
        expect(applySubmission(inOrder.ws, retract, 301).kind).toBe("applied");

        const reversed = setup();
        const sameRetract = { ...retract, hashes: [reversed[retracted].md5] };
        expect(applySubmission(reversed.ws, sameRetract, 300).kind).toBe("applied");
        expect(applySubmission(reversed.ws, reversed.merge, 301).kind).toBe("applied");

        const want = live(inOrder.ws);
        expect(want).toHaveLength(1);
        expect(want[0]?.sightings).toEqual({ "force-b": "RETRACT@300", "force-c": "ASSERT@200", nca: "ASSERT@210" });
        expect(live(reversed.ws).map((r) => r.sightings)).toEqual(want.map((r) => r.sightings));
        expect(live(reversed.ws).map((r) => r.hashes.length)).toEqual(want.map((r) => r.hashes.length));
      });
    }

    it("a retraction of two records older than the agency's sighting of one still reaches the other", () => {
      const { ws, r1, r2 } = setup();
      applySubmission(ws, sub("force-b", [r1.md5], { submittedAt: 300 }), 300);
      const retract = sub("force-b", [r1.sha1, r2.sha1], { op: "RETRACT", submittedAt: 250 });
      expect(applySubmission(ws, retract, 301).kind).toBe("applied");
      const bySha1 = (h: ReturnType<typeof sha1>) => [...ws.records.values()].find((r) => r.hashes.has(hashKey(h)));
      expect(bySha1(r1.sha1)?.sightings.get("force-b")).toMatchObject({ op: "ASSERT", submittedAt: 300 });
      expect(bySha1(r2.sha1)?.sightings.get("force-b")).toMatchObject({ op: "RETRACT", submittedAt: 250 });
    });

    it("still refuses a stale assertion that adds no hash and merges nothing", () => {
      const { ws, r1 } = setup();
      applySubmission(ws, sub("force-b", [r1.md5], { op: "RETRACT", submittedAt: 300 }), 300);
      expect(applySubmission(ws, sub("force-b", [r1.md5, r1.sha1], { submittedAt: 290 }), 301)).toMatchObject({
        reason: "STALE_SUBMISSION",
      });
    });

    it("keeps the newer sighting's grade when the stale one brings a new hash", () => {
      const { ws, r1 } = setup();
      applySubmission(ws, sub("force-b", [r1.md5], { submittedAt: 300, grade: { uk: "C", ics: null, vics: null } }), 300);
      const extra = sha1(randomHex(20));
      expect(applySubmission(ws, sub("force-b", [r1.md5, extra], { submittedAt: 290 }), 301).kind).toBe("applied");
      const rec = [...ws.records.values()].find((r) => r.hashes.has(hashKey(r1.md5)));
      expect(rec?.hashes.has(hashKey(extra))).toBe(true);
      expect(rec?.sightings.get("force-b")).toMatchObject({ uk: "C", submittedAt: 300 });
    });
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
