import { describe, expect, it } from "vitest";
import { LAW_ENFORCEMENT_ONLY_FIELDS } from "../shared/audit.ts";
import { AvroCodec } from "../shared/wire/codec.ts";
import type { AuditEvent } from "../shared/wire/records.ts";
import { deriveKeyId, generateSigningKeyPair } from "../shared/wire/signing.ts";
import {
  accessApplied,
  accessRevoked,
  agencyRegistered,
  defaultActor,
  dlqRedriven,
  keyRegistered,
  keyRevoked,
  partnerRegistered,
  policySet,
} from "./audit.ts";

const codec = new AvroCodec();

function expectClean(e: AuditEvent): void {
  expect(e.service).toBe("admin");
  expect(e.actor).toBe("alice");
  for (const field of LAW_ENFORCEMENT_ONLY_FIELDS) expect(e.detail[field], field).toBeUndefined();
  expect(codec.decode("AuditEvent", codec.encode("AuditEvent", e)).value).toEqual(e);
}

describe("admin audit events", () => {
  it("a key registration records the public half and validity, never the private key", () => {
    const pair = generateSigningKeyPair();
    const keyId = deriveKeyId("force-a", pair.publicKey);
    const validFrom = new Date("2026-01-01T00:00:00Z");
    const e = keyRegistered("alice", {
      keyId,
      ownerKind: "agency",
      ownerId: "force-a",
      publicKey: pair.publicKey,
      validFrom,
      validUntil: null,
    });
    expect(e).toMatchObject({
      action: "key.registered",
      subjectKind: "key",
      subjectId: keyId,
      detail: {
        ownerKind: "agency",
        ownerId: "force-a",
        publicKey: pair.publicKey.toString("base64"),
        validFrom: validFrom.toISOString(),
        validUntil: "open",
      },
    });
    const text = JSON.stringify(e);
    expect(text).not.toContain("PRIVATE KEY");
    const privateBody = pair.privateKeyPem.replace(/-----[A-Z ]+-----/g, "").replace(/\s/g, "");
    expect(text).not.toContain(privateBody);
    expectClean(e);
  });

  it("a revocation records the reason, owner and how many records depended on the key", () => {
    const revokedAt = new Date("2026-02-01T00:00:00Z");
    const key = {
      keyId: "force-a:0011223344556677",
      ownerKind: "agency" as const,
      ownerId: "force-a",
      publicKey: Buffer.alloc(32),
      validFrom: revokedAt,
      validUntil: null,
      revokedAt,
    };
    const e = keyRevoked("alice", key.keyId, "laptop stolen", key, 3);
    expect(e).toMatchObject({
      action: "key.revoked",
      subjectId: key.keyId,
      detail: { reason: "laptop stolen", ownerId: "force-a", revokedAt: revokedAt.toISOString(), dependentRecords: "3" },
    });
    expectClean(e);
  });

  it("a policy change names the grants, flagging withheld-by-default fields by name", () => {
    const e = policySet("alice", {
      partnerId: "taskforce",
      categories: ["A", "B"],
      minGradingStatus: "confirmed",
      algorithms: ["md5"],
      scheme: "ics",
      extraFields: ["gradingStatus", "caseRefs", "agencies"],
      delivery: "s3",
      feedPartitions: 1,
      version: 5,
    });
    expect(e).toMatchObject({
      action: "policy.set",
      subjectKind: "policy",
      subjectId: "taskforce",
      revision: 5,
      detail: {
        version: "5",
        categories: "A,B",
        extraFields: "gradingStatus,caseRefs,agencies",
        withheldFieldsGranted: "caseRefs,agencies",
        delivery: "s3",
        feedPartitions: "1",
      },
    });
    expectClean(e);
  });

  it("registrations, access changes and re-drives each make one event", () => {
    expectClean(agencyRegistered("alice", { agencyId: "force-a", name: "Synthetic Force A", kind: "force", gradingAuthority: false }));
    expectClean(partnerRegistered("alice", { partnerId: "hotline-uk", name: "Synthetic hotline" }));
    const applied = accessApplied("alice", {
      namespace: "ns",
      principals: ["partner-b", "hashrelay-dedup", "partner-b"],
      grants: 12,
      partners: ["b"],
      agencies: ["met-police"],
    });
    expect(applied).toMatchObject({
      action: "access.applied",
      subjectKind: "principal",
      subjectId: "hashrelay-dedup,partner-b",
      detail: { grants: "12", producingAgencies: "met-police" },
    });
    expectClean(applied);
    expectClean(accessRevoked("alice", "partner-b", 3));
    const redriven = dlqRedriven(
      "alice",
      "ns.hashes.rejected.v1",
      { reason: "UNKNOWN_KEY", since: 0 },
      { matched: 2, republished: 1, readmitted: { accepted: 1, duplicates: 0, rejected: 0 }, skipped: 0 },
    );
    expect(redriven).toMatchObject({
      subjectKind: "dlq",
      subjectId: "ns.hashes.rejected.v1",
      detail: { reason: "UNKNOWN_KEY", since: "1970-01-01T00:00:00.000Z", matched: "2" },
    });
    expectClean(redriven);
  });

  it("the actor defaults to $USER, else operator", () => {
    expect(defaultActor({ USER: "bob" })).toBe("bob");
    expect(defaultActor({})).toBe("operator");
  });
});
