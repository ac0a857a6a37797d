/**
 * The planning core without a database: an empty store (a `complete` ledger) fed canonical
 * records in every order a partitioned topic can deliver them, checked against reconciliation.
 */
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { hotlinePolicy, industryPolicy, randomHex, sampleCanonicalRecord } from "../../test/support/fixtures.ts";
import type { CanonicalRecord, Hash } from "../shared/wire/records.ts";
import { FeedLedger, governingRecord, planRecord } from "./planner.ts";
import type { FeedEntry, PartnerPolicy } from "./policy.ts";
import { expectedHoldings } from "./reconcile.ts";

const policies: PartnerPolicy[] = [hotlinePolicy("hotline"), industryPolicy("industry")];

const md5 = (): Hash => ({ alg: "md5", value: randomHex(16), quality: null });
const sha1 = (): Hash => ({ alg: "sha1", value: randomHex(20), quality: null });

function canonical(
  recordId: string,
  revision: number,
  hashes: Hash[],
  updatedAt: number,
  over: Partial<CanonicalRecord> = {},
): CanonicalRecord {
  return {
    ...sampleCanonicalRecord(),
    recordId,
    revision,
    hashes,
    updatedAt,
    classification: { uk: "A", ics: "A1" },
    gradingStatus: "confirmed",
    ...over,
  };
}

/** Feeds records through the planner as distribution would, and applies the changes like a partner sink. */
function distribute(records: readonly CanonicalRecord[], removed: string[] = []) {
  const ledger = new FeedLedger(true);
  const held = new Map<string, Map<string, FeedEntry>>(policies.map((p) => [p.partnerId, new Map()]));
  for (const r of records) {
    if ((ledger.knownRecord(r.recordId)?.revision ?? 0) >= r.revision) continue;
    for (const { policy, changes } of planRecord(ledger, r, policies)) {
      const feed = held.get(policy.partnerId) as Map<string, FeedEntry>;
      for (const c of changes) {
        const k = `${c.entry.alg}:${c.entry.value}`;
        if (c.op === "UPSERT") feed.set(k, c.entry);
        else {
          // A REMOVE only ever takes away what the partner holds, under the record that holds it.
          expect(feed.get(k)?.recordId).toBe(c.entry.recordId);
          feed.delete(k);
          removed.push(`${policy.partnerId}|${k}`);
        }
      }
    }
  }
  return { ledger, held };
}

function expectReconciled(records: readonly CanonicalRecord[], held: Map<string, Map<string, FeedEntry>>, label: string) {
  for (const policy of policies) {
    const got = new Map([...(held.get(policy.partnerId) ?? [])].map(([k, e]) => [k, e.category]));
    expect(got, `${label}: ${policy.partnerId}`).toEqual(expectedHoldings(policy, records));
  }
}

function interleavings<T>(a: readonly T[], b: readonly T[]): T[][] {
  if (!a.length) return [[...b]];
  if (!b.length) return [[...a]];
  return [
    ...interleavings(a.slice(1), b).map((rest) => [a[0] as T, ...rest]),
    ...interleavings(a, b.slice(1)).map((rest) => [b[0] as T, ...rest]),
  ];
}

function merge() {
  const S = randomUUID();
  const M = randomUUID();
  const X = md5();
  const [s1, sSha, mSha] = [md5(), sha1(), sha1()];
  return {
    S,
    M,
    X,
    records: {
      S1: canonical(S, 1, [s1, sSha], 1_000),
      M1: canonical(M, 1, [X, mSha], 2_000, { classification: { uk: "B", ics: "B1" } }),
      S2: canonical(S, 2, [s1, sSha, X, mSha], 3_000),
      M2: canonical(M, 2, [], 3_000, { deleted: true, mergedInto: S }),
    },
  };
}

describe("planner", () => {
  it("plans upserts for granted algorithms, nothing for a repeat, and removes what the record no longer grants", () => {
    const r = sampleCanonicalRecord();
    const ledger = new FeedLedger(true);
    const [, industry] = planRecord(ledger, r, policies);
    expect(industry?.changes.map((c) => `${c.op}:${c.entry.alg}`).sort()).toEqual(["UPSERT:md5", "UPSERT:pdq"]);
    expect(planRecord(ledger, r, policies)[1]?.changes).toEqual([]);
    const withdrawn = planRecord(ledger, { ...r, revision: 4, deleted: true }, policies)[1];
    expect(withdrawn?.changes.map((c) => [c.op, c.op === "REMOVE" ? c.revision : null])).toEqual([
      ["REMOVE", 4],
      ["REMOVE", 4],
    ]);
    const revived = planRecord(ledger, { ...r, revision: 5 }, policies)[1];
    expect(revived?.changes.map((c) => c.op)).toEqual(["UPSERT", "UPSERT"]);
    const regraded = planRecord(ledger, { ...r, revision: 6, classification: { uk: "C", ics: null } }, policies)[1];
    expect(regraded?.changes.map((c) => c.op)).toEqual(["REMOVE", "REMOVE"]);
  });

  it.each(interleavings(["S1", "S2"], ["M1", "M2"]).map((o) => [o.join(" ")]))(
    "a merge arriving as %s leaves every hash with the survivor",
    (order) => {
      const { S, X, records } = merge();
      const sequence = order.split(" ").map((k) => records[k as keyof typeof records]);
      const { held } = distribute(sequence);
      expectReconciled(sequence, held, order);
      expect(held.get("hotline")?.get(`md5:${X.value}`)?.recordId).toBe(S);
      expect(held.get("industry")?.get(`md5:${X.value}`)).toMatchObject({ recordId: S, category: "A1" });
    },
  );

  it.each(interleavings(["S1", "S2"], ["M1", "M2"]).map((o) => [o.join(" ")]))(
    "a merge arriving as %s never takes a hash out of a feed on the way",
    (order) => {
      const { records } = merge();
      const removed: string[] = [];
      distribute(
        order.split(" ").map((k) => records[k as keyof typeof records]),
        removed,
      );
      // M's merge revision before S's: X waits under M for the survivor instead of REMOVE then UPSERT.
      expect(removed).toEqual([]);
    },
  );

  it("a hash waiting for its survivor goes when the survivor's revision does not grant it", () => {
    const { S, M, X, records } = merge();
    const { held } = distribute([records.M1, records.M2]);
    expect(held.get("hotline")?.get(`md5:${X.value}`)?.recordId).toBe(M); // waiting for S
    // S arrives already withdrawn (say retracted in the same dedup batch as the merge): X goes.
    const withdrawn = canonical(S, 2, records.S2.hashes, 3_000, { deleted: true });
    const sequence = [records.M1, records.M2, withdrawn];
    const removed: string[] = [];
    const end = distribute(sequence, removed);
    expect(end.held.get("hotline")?.has(`md5:${X.value}`)).toBe(false);
    expect(removed).toContain(`hotline|md5:${X.value}`);
    expectReconciled(sequence, end.held, "withdrawn survivor");
    // A survivor revision older than the merge does not end the wait.
    const early = distribute([records.M1, records.M2, records.S1]);
    expect(early.held.get("hotline")?.get(`md5:${X.value}`)?.recordId).toBe(M);
  });

  it("lets the fresher revision govern a hash two records claim while revisions are in flight", () => {
    const { S, M, X, records } = merge();
    const { ledger, held } = distribute([records.S1, records.S2, records.M1]);
    // M rev 1 (older, category B) is live and lists X, but S's merge revision is fresher.
    expect(ledger.claimants(`md5:${X.value}`).sort()).toEqual([S, M].sort());
    expect(governingRecord(ledger, `md5:${X.value}`)?.recordId).toBe(S);
    expect(held.get("hotline")?.get(`md5:${X.value}`)).toMatchObject({ recordId: S, category: "A" });
    // M rev 1 first: M holds X until S's merge revision, which takes it over without a REMOVE.
    const other = merge();
    const seen = distribute([other.records.M1, other.records.S1]);
    expect(seen.held.get("hotline")?.get(`md5:${other.X.value}`)?.recordId).toBe(other.M);
    const after = planRecord(seen.ledger, other.records.S2, policies)[0];
    expect(after?.changes.filter((c) => c.entry.value === other.X.value).map((c) => [c.op, c.entry.recordId])).toEqual([
      ["UPSERT", other.S],
    ]);
    expect(planRecord(seen.ledger, other.records.M2, policies).flatMap((p) => p.changes)).toEqual([]);
  });

  it("a withdrawn or merged record never owns a hash, and its hashes go back to a live claimant", () => {
    const A = randomUUID();
    const B = randomUUID();
    const X = md5();
    // Two live claimants of X (in flight); the governing one is withdrawn: X moves to the other.
    const records = [
      canonical(A, 1, [X], 1_000),
      canonical(B, 1, [X], 2_000, { classification: { uk: "B", ics: "B1" } }),
      canonical(B, 2, [X], 3_000, { deleted: true }),
    ];
    const { held } = distribute(records);
    expect(held.get("hotline")?.get(`md5:${X.value}`)).toMatchObject({ recordId: A, category: "A" });
    expectReconciled(records, held, "withdrawn claimant");
  });

  it("a perceptual value on several live records goes by the governing one; a retraction of that one hands it to the other", () => {
    const [A, B] = [randomUUID(), randomUUID()];
    const P: Hash = { alg: "pdq", value: randomHex(32), quality: 90 };
    const records = [
      canonical(A, 1, [md5(), P], 1_000),
      canonical(B, 1, [md5(), P], 2_000, { classification: { uk: "B", ics: "B1" } }),
      canonical(B, 2, [md5(), P], 3_000, { deleted: true }),
    ];
    const first = distribute(records.slice(0, 2));
    expect(first.held.get("industry")?.get(`pdq:${P.value}`)).toMatchObject({ recordId: B, category: "B1" });
    expectReconciled(records.slice(0, 2), first.held, "two carriers");
    const { held } = distribute(records);
    expect(held.get("industry")?.get(`pdq:${P.value}`)).toMatchObject({ recordId: A, category: "A1" });
    expectReconciled(records, held, "one carrier retracted");
  });

  it("a degenerate value is never upserted, and a revision marking a held value degenerate removes it", () => {
    const A = randomUUID();
    const [X, P, weak] = [
      md5(),
      { alg: "pdq" as const, value: randomHex(32), quality: 90 },
      { alg: "pdq" as const, value: randomHex(32), quality: 20 },
    ];
    const shared = { alg: P.alg, value: P.value, reason: "SHARED" as const };
    const records = [
      canonical(A, 1, [X, P, weak], 1_000, { degenerate: [{ alg: weak.alg, value: weak.value, reason: "LOW_QUALITY" }] }),
      canonical(A, 2, [X, P, weak], 2_000, { degenerate: [{ alg: weak.alg, value: weak.value, reason: "LOW_QUALITY" }, shared] }),
    ];
    const removed: string[] = [];
    const first = distribute(records.slice(0, 1));
    expect([...(first.held.get("industry")?.keys() ?? [])].sort()).toEqual([`md5:${X.value}`, `pdq:${P.value}`].sort());
    const { held } = distribute(records, removed);
    expect([...(held.get("industry")?.keys() ?? [])]).toEqual([`md5:${X.value}`]);
    expect(removed).toEqual([`industry|pdq:${P.value}`]);
    expectReconciled(records, held, "degenerate");
  });

  it("refuses to plan from state that was not loaded", () => {
    const ledger = new FeedLedger();
    expect(() => planRecord(ledger, sampleCanonicalRecord(), policies)).toThrow(/not loaded/);
  });
});

describe("records under review", () => {
  const withholding = hotlinePolicy("hotline", { withholdUnderReview: true });
  const keeping = industryPolicy("industry");
  const both = [withholding, keeping];
  const changesOf = (plans: ReturnType<typeof planRecord>, partnerId: string) =>
    plans.find((p) => p.policy.partnerId === partnerId)?.changes.map((c) => `${c.op} ${c.entry.alg}`) ?? [];

  it("a review withdraws the record from partners that withhold under review, and the decision restores it", () => {
    const ledger = new FeedLedger(true);
    const id = randomUUID();
    const record = canonical(id, 1, [md5()], 1);
    planRecord(ledger, record, both);
    ledger.setReview(id, true);
    const opened = planRecord(ledger, record, both);
    expect(changesOf(opened, "hotline")).toEqual(["REMOVE md5"]);
    expect(changesOf(opened, "industry")).toEqual([]);
    // Revisions during the review reach only the partner that keeps receiving it.
    const regraded = canonical(id, 2, record.hashes, 2, { classification: { uk: "B", ics: "B1" } });
    const during = planRecord(ledger, regraded, both);
    expect(changesOf(during, "hotline")).toEqual([]);
    expect(changesOf(during, "industry")).toEqual(["UPSERT md5"]);
    ledger.setReview(id, false);
    const decided = planRecord(ledger, regraded, both);
    expect(changesOf(decided, "hotline")).toEqual(["UPSERT md5"]);
    expect(decided.find((p) => p.policy.partnerId === "hotline")?.changes[0]?.entry.category).toBe("B");
    expect(changesOf(decided, "industry")).toEqual([]);
  });

  it("a record withdrawn while under review is not sent again when the review closes", () => {
    const ledger = new FeedLedger(true);
    const id = randomUUID();
    const record = canonical(id, 1, [md5()], 1);
    planRecord(ledger, record, both);
    ledger.setReview(id, true);
    planRecord(ledger, record, both);
    const retracted = canonical(id, 2, record.hashes, 2, { deleted: true });
    expect(changesOf(planRecord(ledger, retracted, both), "industry")).toEqual(["REMOVE md5"]);
    ledger.setReview(id, false);
    const decided = planRecord(ledger, retracted, both);
    expect(decided.every((p) => p.changes.length === 0)).toBe(true);
  });

  it("an unloaded review state is a bug, not 'no review'", () => {
    const ledger = new FeedLedger(false);
    expect(() => ledger.underReview(randomUUID())).toThrow(/review of .* not loaded/);
  });
});

describe("reconciliation under review", () => {
  it("expects nothing of a record under review from a partner that withholds, and everything from one that keeps", async () => {
    const { expectedHoldings: expected } = await import("./reconcile.ts");
    const record = canonical(randomUUID(), 1, [md5()], 1);
    const review = new Set([record.recordId]);
    expect(expected(hotlinePolicy("h", { withholdUnderReview: true }), [record], review).size).toBe(0);
    expect(expected(hotlinePolicy("h"), [record], review).size).toBe(1);
    expect(expected(hotlinePolicy("h", { withholdUnderReview: true }), [record]).size).toBe(1);
  });
});
