import { describe, expect, it } from "vitest";
import { LAW_ENFORCEMENT_ONLY_FIELDS, assertAuditDetailSafe, auditEvent, auditMessage } from "./audit.ts";
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
});
