import { describe, expect, it } from "vitest";
import {
  AUDIT_BATCH_ACTION,
  EVENTS_PER_BATCH,
  LAW_ENFORCEMENT_ONLY_FIELDS,
  assertAuditDetailSafe,
  auditBatches,
  auditEvent,
  auditMessage,
  expandAuditEvent,
} from "./audit.ts";
import { AvroCodec } from "./wire/codec.ts";
import { topicNames } from "./topics.ts";

const base = { service: "admin", actor: "alice", action: "key.registered", subjectKind: "key", subjectId: "force-a:0011223344556677" };

describe("audit events", () => {
  it("builds an AuditEvent that round-trips through the codec, keyed by its subject", () => {
    const codec = new AvroCodec();
    const e = auditEvent({ ...base, detail: { ownerId: "force-a" }, at: 1_700_000_000_000 });
    expect(e).toMatchObject({ ...base, at: 1_700_000_000_000, revision: null, detail: { ownerId: "force-a" } });
    expect(e.eventId).toMatch(/^[0-9a-f-]{36}$/);
    const m = auditMessage(codec, topicNames("ns"), e);
    expect(m.topic).toBe("ns.audit.v1");
    expect(m.key).toBe(base.subjectId);
    expect(codec.decode("AuditEvent", m.value).value).toEqual(e);
  });

  it("refuses a detail that would carry a law-enforcement-only field or a secret", () => {
    for (const field of LAW_ENFORCEMENT_ONLY_FIELDS) {
      expect(() => auditEvent({ ...base, detail: { [field]: "x" } }), field).toThrow(/law-enforcement-only/);
    }
    for (const key of ["privateKey", "privateKeyPem", "pseudonymSecret", "KAFKA_SASL_PASSWORD", "signature", "apiToken"]) {
      expect(() => auditEvent({ ...base, detail: { [key]: "x" } }), key).toThrow(/secret/);
    }
    // Naming such fields as values (which extras a policy grants) is allowed.
    expect(() => assertAuditDetailSafe({ extraFields: "caseRefs,series", publicKey: "AAAA", keyId: "hub:1" })).not.toThrow();
  });

  it("needs who, what and to what", () => {
    expect(() => auditEvent({ ...base, actor: "" })).toThrow(/actor/);
    expect(() => auditEvent({ ...base, subjectId: "" })).toThrow(/subjectId/);
  });

  it("carries many events in few audit.batch events that read back as the events themselves", () => {
    const codec = new AvroCodec();
    const inputs = Array.from({ length: EVENTS_PER_BATCH + 3 }, (_, i) => ({
      ...base,
      service: "dedup",
      actor: `force-${i % 2}`,
      action: "submission.applied",
      subjectKind: "submission",
      subjectId: `sub-${i}`,
      ...(i === 0 ? { revision: 4 } : {}),
      detail: { recordId: `rec-${i}`, op: "ADD" },
    }));
    const batches = auditBatches("dedup", "hashrelay-dedup", 42, inputs);
    expect(batches.map((b) => [b.action, b.subjectId, b.detail["count"]])).toEqual([
      [AUDIT_BATCH_ACTION, "hashrelay-dedup", String(EVENTS_PER_BATCH)],
      [AUDIT_BATCH_ACTION, "hashrelay-dedup", "3"],
    ]);
    // What every event of a batch has alike is written once.
    expect(JSON.parse(batches[0]?.detail["shared"] ?? "")).toEqual({ op: "ADD" });
    expect(batches[0]?.detail["events"]).not.toContain('"op"');
    const back = batches.flatMap((b) => expandAuditEvent(codec.decode("AuditEvent", codec.encode("AuditEvent", b)).value));
    expect(back).toHaveLength(inputs.length);
    expect(back[0]).toEqual({
      eventId: `${batches[0]?.eventId}#0`,
      at: 42,
      service: "dedup",
      actor: "force-0",
      action: "submission.applied",
      subjectKind: "submission",
      subjectId: "sub-0",
      revision: 4,
      detail: { recordId: "rec-0", op: "ADD" },
    });
    expect(back.at(-1)).toMatchObject({ eventId: `${batches[1]?.eventId}#2`, subjectId: `sub-${EVENTS_PER_BATCH + 2}`, revision: null });
    expect(auditBatches("dedup", "k", 1, [])).toEqual([]);
    // A batched event is checked as one on its own would be.
    expect(() => auditBatches("dedup", "k", 1, [{ ...base, detail: { caseRef: "SYN-1" } }])).toThrow(/law-enforcement-only/);
    // Any other event reads back as itself.
    const single = auditEvent(base);
    expect(expandAuditEvent(single)).toEqual([single]);
  });
});
