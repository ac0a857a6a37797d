import { describe, expect, it } from "vitest";
import { auditEvent } from "../shared/audit.ts";
import { formatAuditEvent, matchesAudit } from "./audit-query.ts";

const at = Date.parse("2026-11-25T10:00:00Z");
const upsert = {
  ...auditEvent({
    service: "distribution",
    actor: "hashrelay-distribution",
    action: "feed.upsert",
    subjectKind: "record",
    subjectId: "rec-1",
    detail: { partnerId: "hotline-uk", seq: "7", partition: "0" },
  }),
  at,
};
const policy = {
  ...auditEvent({
    service: "admin",
    actor: "alice",
    action: "policy.set",
    subjectKind: "policy",
    subjectId: "hotline-uk",
    detail: { version: "2" },
  }),
  at: at + 1000,
};
const access = {
  ...auditEvent({
    service: "admin",
    actor: "bob",
    action: "access.revoked",
    subjectKind: "principal",
    subjectId: "partner-industry-x",
    detail: { aclsRemoved: "3" },
  }),
  at: at + 2000,
};

describe("audit query", () => {
  it("finds what a partner was sent and what was decided about it", () => {
    expect([upsert, policy, access].filter((e) => matchesAudit(e, { partner: "hotline-uk" }))).toEqual([upsert, policy]);
    expect([upsert, policy, access].filter((e) => matchesAudit(e, { partner: "industry-x" }))).toEqual([access]);
  });

  it("matches an action exactly, or by a prefix ending in a dot", () => {
    expect(matchesAudit(upsert, { action: "feed." })).toBe(true);
    expect(matchesAudit(upsert, { action: "feed" })).toBe(false);
    expect(matchesAudit(upsert, { action: "feed.remove" })).toBe(false);
  });

  it("combines subject, actor, service and time", () => {
    expect(matchesAudit(upsert, { subject: "rec-1", service: "distribution" })).toBe(true);
    expect(matchesAudit(upsert, { subject: "rec-2" })).toBe(false);
    expect(matchesAudit(policy, { actor: "alice", since: at + 1000 })).toBe(true);
    expect(matchesAudit(policy, { since: at + 1001 })).toBe(false);
  });

  it("prints one tab-separated line with the details sorted", () => {
    expect(formatAuditEvent(upsert)).toBe(
      "2026-11-25T10:00:00.000Z\tdistribution\thashrelay-distribution\tfeed.upsert\trecord:rec-1\tpartition=0 partnerId=hotline-uk seq=7",
    );
  });
});
