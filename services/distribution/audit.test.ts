import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { sampleCanonicalRecord, sampleFeedRecord } from "../../test/support/fixtures.ts";
import { AUDIT_BATCH_ACTION, EVENTS_PER_BATCH, LAW_ENFORCEMENT_ONLY_FIELDS, expandAuditEvent } from "../shared/audit.ts";
import { AvroCodec } from "../shared/wire/codec.ts";
import { DISTRIBUTION_ACTOR, disclosureEvents, policyAppliedEvent } from "./audit.ts";
import type { Disclosure } from "./audit.ts";
import { EXTRA_FIELDS, extrasFor } from "./policy.ts";
import type { PartnerPolicy } from "./policy.ts";

const codec = new AvroCodec();
/** A policy granting every extra field, law-enforcement-only ones included. */
const generous: PartnerPolicy = {
  partnerId: "taskforce",
  categories: ["A", "B", "C"],
  minGradingStatus: "indicative",
  algorithms: ["md5", "sha1"],
  scheme: "uk",
  extraFields: [...EXTRA_FIELDS],
  delivery: "both",
  feedPartitions: 2,
  version: 4,
};

describe("distribution audit events", () => {
  it("a disclosure names the hub record, partner and feed position, never the values sent", () => {
    const record = {
      ...sampleCanonicalRecord(),
      restricted: {
        caseRefs: ["SYN-CASE-0001"],
        series: ["SYN-SERIES"],
        victimIdentified: true,
        offenderIdentified: false,
        isDistributed: true,
        graderRefs: ["SYN-GRADER"],
      },
    };
    const hash = record.hashes[0] as (typeof record.hashes)[number];
    const extra = extrasFor(record, generous);
    expect(extra["caseRefs"]).toBe("SYN-CASE-0001"); // the feed record itself carries them: granted
    const feed = {
      ...sampleFeedRecord(),
      partnerId: "taskforce",
      partition: 1,
      seq: 42,
      alg: hash.alg,
      value: hash.value,
      category: "B",
      revision: record.revision,
      extra,
    };
    const [run, ...more] = disclosureEvents(
      [{ record: feed, recordId: record.recordId, delivery: "both" }],
      { kind: "canonical" },
      1_700_000_000_000,
    );
    expect(more).toEqual([]);
    if (!run) throw new Error("no event");
    expect(run).toMatchObject({ action: AUDIT_BATCH_ACTION, subjectKind: "batch", subjectId: DISTRIBUTION_ACTOR, revision: null });
    // Read back as operators read it: one event per record disclosed.
    const [e] = expandAuditEvent(codec.decode("AuditEvent", codec.encode("AuditEvent", run)).value);
    if (!e) throw new Error("no disclosure");

    expect(e).toMatchObject({
      eventId: `${run.eventId}#0`,
      service: "distribution",
      actor: DISTRIBUTION_ACTOR,
      action: "feed.upsert",
      subjectKind: "record",
      subjectId: record.recordId,
      revision: record.revision,
      at: 1_700_000_000_000,
      detail: {
        partnerId: "taskforce",
        partition: "1",
        seq: "42",
        alg: hash.alg,
        delivery: "both",
        keyId: feed.keyId,
        cause: "canonical",
        category: "B",
      },
    });
    // Which extras went out, by name only.
    expect(e.detail["extraFields"]?.split(",").sort()).toEqual(Object.keys(extra).sort());
    for (const field of LAW_ENFORCEMENT_ONLY_FIELDS) {
      expect(e.detail[field], field).toBeUndefined();
      expect(run.detail[field], field).toBeUndefined();
    }
    const text = JSON.stringify(run);
    for (const secret of [
      "SYN-CASE-0001",
      "SYN-SERIES",
      "SYN-GRADER",
      "force-a",
      hash.value,
      feed.recordRef,
      feed.signature.toString("base64"),
      feed.signature.toString("hex"),
    ]) {
      expect(text, secret).not.toContain(secret);
    }
  });

  it("a removal is audited as feed.remove with the revision that caused it", () => {
    const feed = { ...sampleFeedRecord(), op: "REMOVE" as const, category: null, contentType: null, revision: 7, seq: 3 };
    const recordId = randomUUID();
    const [e] = disclosureEvents([{ record: feed, recordId, delivery: "kafka" }], { kind: "policy", version: 2 }, 1).flatMap(
      expandAuditEvent,
    );
    if (!e) throw new Error("no disclosure");
    expect(e).toMatchObject({ action: "feed.remove", subjectId: recordId, revision: 7, detail: { seq: "3", cause: "policy v2" } });
    expect(e.detail["category"]).toBeUndefined();
    expect(e.detail["extraFields"]).toBeUndefined();
  });

  it("a transaction's disclosures travel in audit.batch events of at most EVENTS_PER_BATCH, read back in order", () => {
    const issued: Disclosure[] = Array.from({ length: 2 * EVENTS_PER_BATCH + 7 }, (_, i) => ({
      record: { ...sampleFeedRecord(), partnerId: "hotline-uk", partition: i % 3, seq: i + 1 },
      recordId: `rec-${i}`,
      delivery: "kafka",
    }));
    const events = disclosureEvents(issued, { kind: "canonical" }, 9);
    expect(events.map((e) => e.detail["count"])).toEqual([String(EVENTS_PER_BATCH), String(EVENTS_PER_BATCH), "7"]);
    const back = events.flatMap(expandAuditEvent);
    expect(back.map((e) => e.subjectId)).toEqual(issued.map((d) => d.recordId));
    expect(back.map((e) => [e.detail["partition"], e.detail["seq"]])).toEqual(
      issued.map((d) => [String(d.record.partition), String(d.record.seq)]),
    );
    expect(disclosureEvents([], { kind: "canonical" }, 9)).toEqual([]);
  });

  it("a policy application names the partner, the versions and what it issued", () => {
    const e = policyAppliedEvent({ policy: generous, previousVersion: 3, recordsEvaluated: 120, upserts: 40, removes: 2 }, 5);
    expect(e).toMatchObject({
      service: "distribution",
      actor: DISTRIBUTION_ACTOR,
      action: "policy.applied",
      subjectKind: "policy",
      subjectId: "taskforce",
      revision: 4,
      detail: { version: "4", previousVersion: "3", recordsEvaluated: "120", upserts: "40", removes: "2", delivery: "both", scheme: "uk" },
    });
    expect(
      policyAppliedEvent({ policy: generous, previousVersion: null, recordsEvaluated: 0, upserts: 0, removes: 0 }, 5).detail[
        "previousVersion"
      ],
    ).toBe("none");
    for (const field of LAW_ENFORCEMENT_ONLY_FIELDS) expect(e.detail[field], field).toBeUndefined();
  });
});
