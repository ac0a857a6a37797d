/**
 * The admin CLI's audit trail, through `bin/hashrelay` as an operator runs it: agency, key
 * register and revoke, partner, policy changes and a DLQ re-drive each write one AuditEvent to the namespace's
 * audit.v1 as the --actor; a command whose audit event cannot be written still makes (and
 * reports) its change, but exits 3 saying so.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LAW_ENFORCEMENT_ONLY_FIELDS } from "../../services/shared/audit.ts";
import { AvroCodec } from "../../services/shared/wire/codec.ts";
import { REPO_ROOT } from "../../services/shared/config.ts";
import type { AuditEvent } from "../../services/shared/wire/records.ts";
import type { TopicNames } from "../../services/shared/topics.ts";
import { readTopic } from "../support/kafka.ts";
import { freshDatabase, freshTopics, kafkaAs } from "../support/stack.ts";
import type { TestDatabase } from "../support/stack.ts";

const codec = new AvroCodec();
const run = promisify(execFile);
let db: TestDatabase;
let names: TopicNames;
let env: Record<string, string>;

beforeAll(async () => {
  db = await freshDatabase("adminaudit");
  let namespace: string;
  ({ names, namespace } = await freshTopics());
  env = { DATABASE_URL: db.url, TOPIC_NAMESPACE: namespace, USER: "ci-operator" };
});
afterAll(async () => {
  await db?.drop();
});

async function cli(args: string[], extraEnv: Record<string, string> = {}): Promise<string> {
  const { stdout } = await run(`${REPO_ROOT}bin/hashrelay`, args, { env: { ...process.env, ...env, ...extraEnv }, timeout: 60_000 });
  return stdout;
}

/** The events on audit.v1 in the order they were made (the topic is keyed by subject, over several partitions). */
async function auditEvents(count: number): Promise<AuditEvent[]> {
  const messages = await readTopic(kafkaAs("test-admin-audit"), names.audit, (ms) => ms.length >= count, 30_000);
  return messages
    .map((m) => {
      const e = codec.decode("AuditEvent", m.value).value;
      expect(m.key).toBe(e.subjectId);
      return e;
    })
    .sort((x, y) => x.at - y.at);
}

describe("admin CLI audit events", () => {
  it("keys register and revoke, agencies, partners, policies set and dlq redrive each write one event as the operator", async () => {
    const keys = mkdtempSync(join(tmpdir(), "hashrelay-audit-keys-"));
    await cli(["agencies", "register", "--id", "force-a", "--name", "Synthetic Force A", "--actor", "alice"]);
    const generated = JSON.parse(await cli(["keys", "generate", "--owner", "force-a", "--out", keys])) as {
      keyId: string;
      publicKey: string;
      privateKeyFile: string;
    };
    const registered = await cli([
      "keys",
      "register",
      "--key-id",
      generated.keyId,
      "--owner",
      "force-a",
      "--public-key",
      `${generated.privateKeyFile}.pub`,
      "--actor",
      "alice",
    ]);
    expect(registered).toContain(`key ${generated.keyId} registered`);
    expect(registered).toContain(`audit: key.registered ${generated.keyId} by alice written to ${names.audit}`);
    await cli(["keys", "revoke", "--key-id", generated.keyId, "--reason", "synthetic rotation drill", "--actor", "bob"]);
    await cli(["partners", "register", "--id", "hotline-uk", "--name", "Synthetic hotline"]); // actor: $USER
    // Granting a law-enforcement-only extra takes a second person; refused without one, changing nothing.
    const grant = [
      "policies",
      "set",
      "--partner",
      "hotline-uk",
      "--min-status",
      "indicative",
      "--algorithms",
      "md5,sha1",
      "--extra",
      "gradingStatus,caseRefs",
      "--actor",
      "alice",
    ];
    await expect(cli(grant)).rejects.toThrow(
      /\[INVALID_FIELD\].*granting caseRefs to hotline-uk needs --approved-by <a second person> other than the actor \(alice\); nothing was changed/,
    );
    await expect(cli([...grant, "--approved-by", "alice"])).rejects.toThrow(/needs --approved-by/);
    expect((await db.pool.query("SELECT 1 FROM partner_policies")).rows).toEqual([]);
    const set = await cli([...grant, "--approved-by", "carol"]);
    expect(set).toContain("policy of hotline-uk is now version 1");
    // A re-drive of an empty dead-letter topic is still an operator action on it.
    expect(await cli(["dlq", "redrive", "--reason", "UNKNOWN_KEY", "--actor", "bob"])).toContain("matched 0");

    const events = await auditEvents(6);
    expect(events.map((e) => [e.service, e.actor, e.action, e.subjectKind, e.subjectId])).toEqual([
      ["admin", "alice", "agency.registered", "agency", "force-a"],
      ["admin", "alice", "key.registered", "key", generated.keyId],
      ["admin", "bob", "key.revoked", "key", generated.keyId],
      ["admin", "ci-operator", "partner.registered", "partner", "hotline-uk"],
      ["admin", "alice", "policy.set", "policy", "hotline-uk"],
      ["admin", "bob", "dlq.redriven", "dlq", names.rejected],
    ]);
    const [agency, keyReg, keyRev, , policy, redrive] = events as [AuditEvent, AuditEvent, AuditEvent, AuditEvent, AuditEvent, AuditEvent];
    expect(agency.detail).toEqual({ name: "Synthetic Force A", kind: "force", gradingAuthority: "false" });
    expect(keyReg.detail).toMatchObject({ ownerKind: "agency", ownerId: "force-a", publicKey: generated.publicKey, validUntil: "open" });
    expect(keyRev.detail).toMatchObject({ reason: "synthetic rotation drill", ownerId: "force-a", dependentRecords: "0" });
    expect(Date.parse(keyRev.detail["revokedAt"] ?? "")).toBeGreaterThan(0);
    expect(policy.revision).toBe(1);
    expect(redrive.detail).toMatchObject({ reason: "UNKNOWN_KEY", matched: "0", republished: "0" });
    expect(policy.detail).toMatchObject({
      version: "1",
      minGradingStatus: "indicative",
      algorithms: "md5,sha1",
      extraFields: "gradingStatus,caseRefs",
      withheldFieldsGranted: "caseRefs",
      approvedBy: "carol",
    });

    // Read back by an operator: one partner's events, and every key event, oldest first.
    const forHotline = (await cli(["audit", "list", "--partner", "hotline-uk"])).trim().split("\n");
    expect(forHotline.map((l) => l.split("\t").slice(2, 5))).toEqual([
      ["ci-operator", "partner.registered", "partner:hotline-uk"],
      ["alice", "policy.set", "policy:hotline-uk"],
    ]);
    const keyEvents = (await cli(["audit", "list", "--action", "key.", "--json"]))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as AuditEvent);
    expect(keyEvents.map((e) => [e.actor, e.action])).toEqual([
      ["alice", "key.registered"],
      ["bob", "key.revoked"],
    ]);

    // No secret and nothing law-enforcement-only in any of them.
    const privateBody = readFileSync(generated.privateKeyFile, "utf8")
      .replace(/-----[A-Z ]+-----/g, "")
      .replace(/\s/g, "");
    for (const e of events) {
      expect(JSON.stringify(e)).not.toContain(privateBody);
      expect(JSON.stringify(e)).not.toContain("PRIVATE KEY");
      for (const field of LAW_ENFORCEMENT_ONLY_FIELDS) expect(e.detail[field]).toBeUndefined();
    }
  }, 120_000);

  it("when Kafka is unreachable the change and its queued event are committed together, the command exits 3, and the event is sent later", async () => {
    const failed = await cli(["partners", "register", "--id", "partner-offline", "--name", "Synthetic offline", "--actor", "dave"], {
      KAFKA_BROKERS: "127.0.0.1:1",
    }).then(
      () => null,
      (err: { code?: number; stdout?: string; stderr?: string }) => err,
    );
    expect(failed?.code).toBe(3);
    expect(failed?.stdout).toContain("partner partner-offline registered");
    expect(failed?.stderr).toMatch(
      /audit event \(partner\.registered partner-offline\) is queued in the hub database, but it is NOT yet written to \S+audit\.v1/,
    );
    const { rows } = await db.pool.query("SELECT partner_id FROM partners WHERE partner_id = 'partner-offline'");
    expect(rows).toHaveLength(1);
    const queued = await db.pool.query<{ action: string }>("SELECT action FROM admin_audit_outbox");
    expect(queued.rows).toEqual([{ action: "partner.registered" }]);

    // A change the database refuses queues nothing: a policy for a partner that is not registered.
    await expect(cli(["policies", "set", "--partner", "ghost-partner"], { KAFKA_BROKERS: "127.0.0.1:1" })).rejects.toThrow(
      /partner_policies|foreign key/,
    );
    expect((await db.pool.query("SELECT action FROM admin_audit_outbox")).rows).toHaveLength(1);

    // Kafka back: the operator (or any next admin command) sends it.
    expect(await cli(["audit", "flush"])).toContain("1 queued audit event(s) written");
    expect((await db.pool.query("SELECT 1 FROM admin_audit_outbox")).rows).toEqual([]);
    expect(await cli(["audit", "flush"])).toContain("no audit events queued");
    const events = await readTopic(
      kafkaAs("test-admin-audit-flush"),
      names.audit,
      (ms) => ms.some((m) => m.key === "partner-offline"),
      30_000,
    );
    const offline = events.map((m) => codec.decode("AuditEvent", m.value).value).filter((e) => e.subjectId === "partner-offline");
    expect(offline.map((e) => [e.actor, e.action])).toEqual([["dave", "partner.registered"]]);
  }, 60_000);
});
