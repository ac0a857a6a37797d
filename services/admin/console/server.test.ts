/**
 * The console's edge with the reads faked: who gets in, what each role sees and may do, and that
 * whatever the hub holds (a partner name, a rejection's detail) reaches the page as text.
 */
import pino from "pino";
import { describe, expect, it, vi } from "vitest";
import type { RedriveFilter } from "../redrive.ts";
import { ConsoleAuthenticator, FormTokens, consoleUserEntry, parseConsoleUsers } from "./auth.ts";
import type { FullRecord, PartnerStatus } from "./overview.ts";
import type { ConsoleReads, RejectionRow } from "./reads.ts";
import { buildConsoleApp } from "./server.ts";

const PASSWORD = "a console password 123";
const users = parseConsoleUsers(
  ["viewer", "operator", "law-enforcement"]
    .map((role) => consoleUserEntry(role === "law-enforcement" ? "lee" : role, role, PASSWORD))
    .join("\n"),
);
const as = (name: string) => ({ authorization: `Basic ${Buffer.from(`${name}:${PASSWORD}`).toString("base64")}` });
const XSS = `<script>alert(1)</script>`;

const partner: PartnerStatus = {
  partnerId: "hotline-uk",
  name: `Hotline ${XSS}`,
  listing: {
    policy: {
      partnerId: "hotline-uk",
      categories: ["A", "B"],
      minGradingStatus: "indicative",
      algorithms: ["md5"],
      scheme: "uk",
      extraFields: [],
      delivery: "kafka",
      feedPartitions: 1,
      version: 1,
    },
    suspension: null,
  },
  heads: [{ partnerId: "hotline-uk", partition: 0, lastSeq: 42 }],
  lag: { partnerId: "hotline-uk", lost: false, partitions: [{ partition: 0, position: 40, low: 0, high: 42, lag: 2, state: "behind" }] },
  exportStatus: null,
  holdings: 41,
  unmappable: 0,
  errors: [],
};
const rejection: RejectionRow = {
  rejectedAt: 1_700_000_000_000,
  service: "ingest",
  reason: "BAD_SIGNATURE",
  channel: "http",
  agencyId: "force-a",
  submissionId: "s1",
  detail: `signature ${XSS}`,
};
const record: FullRecord = {
  recordId: "00000000-0000-4000-8000-000000000001",
  revision: 2,
  deleted: false,
  mergedInto: null,
  contentType: "image",
  firstSeenAt: 1_700_000_000_000,
  updatedAt: 1_700_000_000_000,
  hashes: [{ alg: "md5", value: "a".repeat(32), quality: null }],
  grading: { uk: "A", ics: null, status: "indicative", confirmations: 1, baseline: false },
  sightings: [
    {
      agencyId: "met-police",
      op: "ASSERT",
      uk: "A",
      ics: null,
      status: "indicative",
      submittedAt: 1,
      restricted: { caseRef: "OP-NIGHTJAR" },
    },
  ],
  holders: [{ partnerId: "hotline-uk", alg: "md5", revision: 2, category: "A" }],
};

const reads: ConsoleReads = {
  pipeline: async () => ({
    stages: [
      {
        name: "ingest",
        input: "HTTP",
        lag: null,
        last5m: { ok: true, value: 3 },
        lastHour: { ok: true, value: 9 },
        perSecond: null,
        outbox: null,
      },
      {
        name: "dedup",
        input: "t.hashes.submitted.v1",
        lag: { ok: true, value: [{ partition: 0, next: 5, end: 7, lag: 2 }] },
        last5m: { ok: false, error: "no such table" },
        lastHour: null,
        perSecond: 1.5,
        outbox: { ok: true, value: { messages: 0, oldestAgeSeconds: 0 } },
      },
    ],
    canonicalRecords: { ok: true, value: { live: 8, withdrawn: 1 } },
    deadLetter: { ok: true, value: 1 },
  }),
  partners: async () => [partner],
  rejections: async () => [rejection],
  keys: async () => ({
    keys: [],
    coverage: {
      agency: { ok: false, error: "down" },
      hub: { ok: true, value: { expirySeconds: Number.POSITIVE_INFINITY, ownersWithoutValidKey: 0, owners: 1 } },
    },
  }),
  lookup: async (q) => (q.value === "a".repeat(32) ? [record] : []),
  disclosures: async () => [
    {
      at: 1_700_000_000_000,
      partnerId: "hotline-uk",
      action: "feed.upsert",
      partition: "0",
      seq: "7",
      alg: "md5",
      revision: 2,
      cause: "canonical",
    },
  ],
};

const lookups: { user: string; algs: readonly string[]; records: readonly string[] }[] = [];

function app(
  redrive = vi.fn(async (_f: RedriveFilter, actor: string) => ({
    report: { matched: 1, republished: 0, readmitted: { accepted: 1, duplicates: 0, rejected: 0 }, skipped: 0 },
    audit: `by ${actor}`,
  })),
) {
  const forms = new FormTokens();
  const a = buildConsoleApp({
    reads,
    auth: new ConsoleAuthenticator(users),
    forms,
    redrive,
    recordLookup: async (user, algs, records) => {
      if (user.name === "viewer") throw new Error("audit outbox unreachable");
      lookups.push({ user: user.name, algs, records });
    },
    thresholds: { partnerLag: 1, exportMaxAgeSeconds: 0, keyWarningDays: 14 },
    namespace: "t",
    logger: pino({ level: "silent" }),
  });
  return { a, forms, redrive };
}

describe("console edge", () => {
  it("refuses every page without credentials or with wrong ones, asking for Basic credentials", async () => {
    const { a } = app();
    for (const url of ["/", "/dlq", "/keys", "/lookup?hash=x", "/static/console.css"]) {
      const res = await a.inject({ url });
      expect(res.statusCode, url).toBe(401);
      expect(res.headers["www-authenticate"]).toMatch(/^Basic realm=/);
      expect(res.body).not.toContain("hotline-uk");
    }
    expect(
      (await a.inject({ url: "/", headers: { authorization: `Basic ${Buffer.from("operator:nope").toString("base64")}` } })).statusCode,
    ).toBe(401);
    expect((await a.inject({ url: "/healthz" })).statusCode).toBe(200);
  });

  it("renders the overview with figures, alerts and a strict CSP, escaping what the hub holds", async () => {
    const { a } = app();
    const res = await a.inject({ url: "/", headers: as("viewer") });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-security-policy"]).toContain("default-src 'none'");
    expect(res.headers["cache-control"]).toBe("no-store");
    expect(res.body).not.toContain("<script");
    expect(res.body).toContain("Hotline &lt;script&gt;alert(1)&lt;/script&gt;");
    expect(res.body).toContain('data-figure="hotline-uk.head.p0">42<');
    expect(res.body).toContain('data-figure="hotline-uk.lag">2<');
    expect(res.body).toContain("lag 2 feed records, over 1");
    expect(res.body).toContain('data-figure="records.live">8<');
    expect(res.body).toContain('title="no such table">unavailable');
  });

  it("shows the DLQ by reason; re-drive forms only to roles with actions", async () => {
    const { a } = app();
    const viewer = await a.inject({ url: "/dlq", headers: as("viewer") });
    expect(viewer.body).toContain('data-figure="dlq.BAD_SIGNATURE.ingest">1<');
    expect(viewer.body).toContain("signature &lt;script&gt;");
    expect(viewer.body).not.toContain('action="/dlq/redrive"');
    const operator = await a.inject({ url: "/dlq", headers: as("operator") });
    expect(operator.body).toContain('action="/dlq/redrive"');
  });

  it("re-drives for an operator with the page's token, as that operator; refuses a viewer, a forged form and a bad filter", async () => {
    const { a, forms, redrive } = app();
    const post = (name: string, body: string) =>
      a.inject({
        method: "POST",
        url: "/dlq/redrive",
        headers: { ...as(name), "content-type": "application/x-www-form-urlencoded" },
        payload: body,
      });
    const token = forms.issue({ name: "operator", role: "operator" });
    expect(
      (await post("viewer", `reason=BAD_SIGNATURE&service=ingest&token=${forms.issue({ name: "viewer", role: "viewer" })}`)).statusCode,
    ).toBe(403);
    expect((await post("operator", "reason=BAD_SIGNATURE&service=ingest&token=forged")).statusCode).toBe(403);
    expect((await post("lee", `reason=BAD_SIGNATURE&service=ingest&token=${token}`)).statusCode).toBe(403);
    expect((await post("operator", `reason=bad%20reason&service=ingest&token=${token}`)).statusCode).toBe(400);
    expect(redrive).not.toHaveBeenCalled();
    const ok = await post("operator", `reason=BAD_SIGNATURE&service=ingest&token=${encodeURIComponent(token)}`);
    expect(ok.statusCode).toBe(200);
    expect(redrive).toHaveBeenCalledWith({ reason: "BAD_SIGNATURE", service: "ingest" }, "operator");
    expect(ok.body).toContain('data-figure="redrive.matched">1<');
  });

  it("finds a hash's record, holders and disclosures; law-enforcement-only fields only for that role", async () => {
    const { a } = app();
    const url = `/lookup?hash=${"A".repeat(32)}`;
    const op = await a.inject({ url, headers: as("operator") });
    expect(op.statusCode).toBe(200);
    expect(op.body).toContain('data-holder="hotline-uk"');
    expect(op.body).toContain('data-disclosed-to="hotline-uk"');
    expect(op.body).not.toContain("met-police");
    expect(op.body).not.toContain("OP-NIGHTJAR");
    const le = await a.inject({ url, headers: as("lee") });
    expect(le.body).toContain("met-police");
    expect(le.body).toContain("caseRef=OP-NIGHTJAR");
    const none = await a.inject({ url: `/lookup?hash=${"b".repeat(40)}`, headers: as("operator") });
    expect(none.body).toContain('data-lookup="none"');
    // Every lookup that reached the records is audited, without the value looked up; none goes unlogged.
    expect(lookups).toEqual([
      { user: "operator", algs: ["md5"], records: [record.recordId] },
      { user: "lee", algs: ["md5"], records: [record.recordId] },
      { user: "operator", algs: ["sha1"], records: [] },
    ]);
    const unlogged = await a.inject({ url, headers: as("viewer") });
    expect(unlogged.statusCode).toBe(500);
    expect(unlogged.body).not.toContain(record.recordId);
    const bad = await a.inject({ url: `/lookup?hash=${encodeURIComponent(XSS)}`, headers: as("operator") });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('data-lookup="invalid"');
    expect(bad.body).not.toContain("<script>");
  });

  it("renders keys with coverage, an unreadable part as unavailable", async () => {
    const { a } = app();
    const res = await a.inject({ url: "/keys", headers: as("viewer") });
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('title="down">unavailable');
    expect(res.body).toContain("the first owner runs out in no end");
  });
});
