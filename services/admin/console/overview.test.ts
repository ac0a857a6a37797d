import { describe, expect, it } from "vitest";
import { CONSOLE_ROLES } from "./auth.ts";
import { RateTracker, groupRejections, keyState, parseHashQuery, partnerAlerts, visibleRecord } from "./overview.ts";
import type { FullRecord, PartnerStatus } from "./overview.ts";

const T = { partnerLag: 100, exportMaxAgeSeconds: 120, keyWarningDays: 14 };
const policy = {
  partnerId: "hotline-uk",
  categories: ["A", "B"] as const,
  minGradingStatus: "indicative" as const,
  algorithms: ["md5", "sha256"] as const,
  scheme: "uk" as const,
  extraFields: [],
  delivery: "both" as const,
  feedPartitions: 3,
  version: 2,
};
const partner = (over: Partial<PartnerStatus> = {}): PartnerStatus => ({
  partnerId: "hotline-uk",
  name: "Hotline",
  listing: { policy: { ...policy, categories: [...policy.categories], algorithms: [...policy.algorithms] }, suspension: null },
  heads: [],
  lag: { partnerId: "hotline-uk", lost: false, partitions: [{ partition: 0, position: 10, low: 0, high: 10, lag: 0, state: "ok" }] },
  exportStatus: { partnerId: "hotline-uk", ageSeconds: 30, pendingRecords: 0 },
  holdings: 10,
  unmappable: 0,
  errors: [],
  ...over,
});

describe("partner alerts", () => {
  it("none for a partner that is caught up with a fresh export", () => {
    expect(partnerAlerts(partner(), T)).toEqual([]);
  });
  it("lost records, suspension, lag over the threshold, never-read partitions, a stale or missing export and read errors", () => {
    const p = partner({
      listing: { ...partner().listing, suspension: { at: new Date(0), reason: "leak" } },
      lag: {
        partnerId: "hotline-uk",
        lost: true,
        partitions: [
          { partition: 0, position: 1, low: 5, high: 300, lag: 299, state: "lost" },
          { partition: 1, position: null, low: 0, high: 2, lag: 2, state: "never-read" },
        ],
      },
      exportStatus: { partnerId: "hotline-uk", ageSeconds: Number.POSITIVE_INFINITY, pendingRecords: 4 },
      errors: ["feed lag (timeout)"],
    });
    const alerts = partnerAlerts(p, T);
    expect(alerts[0]).toMatch(/^LOST/);
    expect(alerts).toContain("lag 301 feed records, over 100");
    expect(alerts.some((a) => a.startsWith("suspended since 1970"))).toBe(true);
    expect(alerts).toContain("its sink has never read some partitions");
    expect(alerts).toContain("no S3 export written yet");
    expect(alerts).toContain("could not read: feed lag (timeout)");
    expect(
      partnerAlerts(partner({ exportStatus: { partnerId: "x", ageSeconds: 500, pendingRecords: 0 } }), { ...T, exportMaxAgeSeconds: 0 }),
    ).toEqual([]);
  });
});

describe("key state", () => {
  const now = new Date("2026-06-01T00:00:00Z");
  const key = (validFrom: string, validUntil: string | null, revokedAt: string | null = null) => ({
    keyId: "k",
    ownerKind: "agency",
    ownerId: "a",
    validFrom: new Date(validFrom),
    validUntil: validUntil ? new Date(validUntil) : null,
    revokedAt: revokedAt ? new Date(revokedAt) : null,
  });
  it("tells valid, expiring, expired, revoked and not yet valid apart", () => {
    expect(keyState(key("2026-01-01", null), now, 14)).toBe("valid");
    expect(keyState(key("2026-01-01", "2026-06-10"), now, 14)).toBe("expiring");
    expect(keyState(key("2026-01-01", "2026-07-10"), now, 14)).toBe("valid");
    expect(keyState(key("2026-01-01", "2026-05-10"), now, 14)).toBe("expired");
    expect(keyState(key("2026-01-01", null, "2026-05-01"), now, 14)).toBe("revoked");
    expect(keyState(key("2026-07-01", null), now, 14)).toBe("not-yet-valid");
  });
});

describe("DLQ grouping", () => {
  it("counts by reason and service, most first, with the oldest and newest times", () => {
    const groups = groupRejections([
      { reason: "BAD_SIGNATURE", service: "ingest", rejectedAt: 5 },
      { reason: "UNKNOWN_KEY", service: "dedup", rejectedAt: 1 },
      { reason: "BAD_SIGNATURE", service: "ingest", rejectedAt: 2 },
      { reason: "BAD_SIGNATURE", service: "dedup", rejectedAt: 3 },
    ]);
    expect(groups).toEqual([
      { reason: "BAD_SIGNATURE", service: "ingest", count: 2, oldest: 2, newest: 5 },
      { reason: "BAD_SIGNATURE", service: "dedup", count: 1, oldest: 3, newest: 3 },
      { reason: "UNKNOWN_KEY", service: "dedup", count: 1, oldest: 1, newest: 1 },
    ]);
  });
});

describe("rate tracker", () => {
  it("gives messages per second over the window, nothing from one reading, and restarts after a reset", () => {
    const r = new RateTracker(60_000);
    r.record("dedup", 100, 0);
    expect(r.perSecond("dedup")).toBeNull();
    r.record("dedup", 200, 10_000);
    expect(r.perSecond("dedup")).toBe(10);
    r.record("dedup", 800, 70_000);
    r.record("dedup", 1400, 130_000);
    expect(r.perSecond("dedup")).toBe(10);
    r.record("dedup", 5, 131_000);
    expect(r.perSecond("dedup")).toBeNull();
  });
});

describe("hash queries", () => {
  it("reads the algorithm from the form of the value, 64 hex as both sha256 and pdq", () => {
    expect(parseHashQuery("D41D8CD98F00B204E9800998ECF8427E")).toEqual({ algs: ["md5"], value: "d41d8cd98f00b204e9800998ecf8427e" });
    expect(parseHashQuery("a".repeat(40))?.algs).toEqual(["sha1"]);
    expect(parseHashQuery(` ${"b".repeat(64)} `)?.algs).toEqual(["sha256", "pdq"]);
    expect(parseHashQuery("b".repeat(64), "pdq")?.algs).toEqual(["pdq"]);
    expect(parseHashQuery(Buffer.alloc(144, 7).toString("base64"))?.algs).toEqual(["photodna"]);
  });
  it("refuses anything else", () => {
    for (const bad of ["", "xyz", "a".repeat(33), "<script>", "' OR 1=1 --", Buffer.alloc(10).toString("base64")])
      expect(parseHashQuery(bad), bad).toBeNull();
    expect(parseHashQuery("a".repeat(32), "sha1")).toBeNull();
  });
});

describe("record visibility", () => {
  const record: FullRecord = {
    recordId: "r1",
    revision: 3,
    deleted: false,
    mergedInto: null,
    contentType: "image",
    firstSeenAt: 0,
    updatedAt: 0,
    hashes: [{ alg: "md5", value: "0".repeat(32), quality: null }],
    grading: { uk: "A", ics: "A1", status: "confirmed", confirmations: 2, baseline: true },
    sightings: [
      {
        agencyId: "met-police",
        op: "ASSERT",
        uk: "A",
        ics: null,
        status: "confirmed",
        submittedAt: 1,
        restricted: { caseRef: "OP-SECRET" },
      },
    ],
    holders: [],
  };
  it("strips the agency and the law-enforcement-only metadata for roles without them", () => {
    for (const role of [CONSOLE_ROLES.viewer, CONSOLE_ROLES.operator]) {
      const text = JSON.stringify(visibleRecord(record, role));
      expect(text).not.toContain("met-police");
      expect(text).not.toContain("OP-SECRET");
    }
    const le = JSON.stringify(visibleRecord(record, CONSOLE_ROLES["law-enforcement"]));
    expect(le).toContain("met-police");
    expect(le).toContain("OP-SECRET");
  });
});
