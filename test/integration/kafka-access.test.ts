/**
 * Kafka authentication and authorization on the real broker: SASL/SCRAM-SHA-512 principals and the
 * ACLs of services/shared/kafka-access.ts. A partner reads its own feed and nothing else; an agency
 * writes submissions and nothing else; each hub service reaches only what its stage needs.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import "../../services/shared/kafkajs-send-messages.ts"; // before kafkajs loads
import kafkajs from "kafkajs";
import type { Kafka, Producer } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT, effectiveEnv } from "../../services/shared/config.ts";
import { createKafka, kafkaConnection } from "../../services/shared/kafka.ts";
import type { KafkaTls } from "../../services/shared/kafka.ts";
import { createLogger } from "../../services/shared/logging.ts";
import { agencyPrincipal, partnerPrincipal, revokePrincipalAccess, servicePrincipal } from "../../services/shared/kafka-access.ts";
import type { TopicNames } from "../../services/shared/topics.ts";
import { brokerTlsEnv, freshDatabase, freshTopics, kafkaAs, onboardPartner, principalEnv, stackEnv, uniqueName } from "../support/stack.ts";
import { registerPartner } from "../../services/admin/registry.ts";
import { AvroCodec } from "../../services/shared/wire/codec.ts";
import { topicNames } from "../../services/shared/topics.ts";
import { readTopic } from "../support/kafka.ts";

type Attempt = { ok: true } | { ok: false; type: string };

/** The kafkajs error type (TOPIC_AUTHORIZATION_FAILED, ...) behind an error and the errors it wraps. */
function errorType(err: unknown): string {
  let e = err as { type?: string; name?: string; originalError?: unknown; cause?: unknown } | undefined;
  for (let depth = 0; e && depth < 5; depth++) {
    if (e.type && e.type !== "UNKNOWN") return e.type;
    if (e.name === "KafkaJSSASLAuthenticationError") return "SASL_AUTHENTICATION_FAILED";
    e = (e.originalError ?? e.cause) as typeof e;
  }
  return (err as Error)?.name ?? String(err);
}

/**
 * A client for the attempts that must be refused: kafkajs does not retry an authorization or
 * authentication refusal, so the few retries only cover a coordinator still being set up (on a
 * freshly formatted broker the first group lookup creates __consumer_offsets).
 */
function client(principal: string, password?: string, tls?: KafkaTls): Kafka {
  const credentials = password ? { KAFKA_SASL_USERNAME: principal, KAFKA_SASL_PASSWORD: password } : principalEnv(principal);
  const connection = kafkaConnection({ KAFKA_BROKERS: stackEnv().brokers, ...brokerTlsEnv(), ...credentials });
  return createKafka({
    ...connection,
    ...(tls !== undefined ? { ssl: tls } : {}),
    clientId: `test-access-${principal}`,
    retries: tls !== undefined ? 0 : 5,
    logger: createLogger("test", "silent"),
  });
}

/** Tries to read one message of `topic` through consumer group `groupId`. */
async function tryRead(kafka: Kafka, topic: string, groupId: string): Promise<Attempt> {
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200, retry: { retries: 5, initialRetryTime: 300 } });
  try {
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    return await new Promise<Attempt>((resolve) => {
      const timer = setTimeout(() => resolve({ ok: false, type: "TIMEOUT" }), 20_000);
      consumer.on(consumer.events.CRASH, (event) => {
        clearTimeout(timer);
        resolve({ ok: false, type: errorType(event.payload.error) });
      });
      void consumer
        .run({
          eachMessage: async () => {
            clearTimeout(timer);
            resolve({ ok: true });
          },
        })
        .catch((err: unknown) => {
          clearTimeout(timer);
          resolve({ ok: false, type: errorType(err) });
        });
    });
  } catch (err) {
    return { ok: false, type: errorType(err) };
  } finally {
    await consumer.disconnect().catch(() => undefined);
  }
}

async function tryWrite(kafka: Kafka, topic: string): Promise<Attempt> {
  const producer = kafka.producer({ allowAutoTopicCreation: false, retry: { retries: 0 } });
  try {
    await producer.connect();
    await producer.send({ topic, acks: -1, messages: [{ key: "k", value: randomBytes(32) }] });
    return { ok: true };
  } catch (err) {
    return { ok: false, type: errorType(err) };
  } finally {
    await producer.disconnect().catch(() => undefined);
  }
}

const REFUSED = ["TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED"];

/**
 * The broker's own record of a refusal (infra/kafka/log4j2.properties): kafkajs reports a group the
 * broker refused as "group coordinator not found", so the authorizer log says what happened.
 */
function brokerDenied(principal: string, resource: string): boolean {
  const log = effectiveEnv()["KAFKA_AUTHORIZER_LOG"];
  if (!log) throw new Error("KAFKA_AUTHORIZER_LOG unset: run the local stack (make up)");
  return readFileSync(log, "utf8")
    .split("\n")
    .some((line) => line.includes(`Principal = User:${principal} is Denied`) && line.includes(`on resource = ${resource} `));
}

/** Refused by the broker: an authorization error, or a denied group the authorizer logged. */
function expectRefused(attempt: Attempt, principal: string, group: string): void {
  expect(attempt.ok).toBe(false);
  const type = (attempt as { type: string }).type;
  if (!REFUSED.includes(type)) {
    expect(type).toBe("KafkaJSGroupCoordinatorNotFound");
    expect(brokerDenied(principal, `Group:LITERAL:${group}`), `authorizer log: ${principal} denied on group ${group}`).toBe(true);
  }
}

let names: TopicNames;
let namespace: string;
let admin: Producer;

beforeAll(async () => {
  ({ names, namespace } = await freshTopics(["hotline-uk", "industry-x"], 1));
  // Something to read in every topic, so a refusal is the ACL's doing and not an empty topic.
  admin = kafkaAs("test-access-seed").producer();
  await admin.connect();
  for (const topic of [names.feed("hotline-uk"), names.feed("industry-x"), names.canonical, names.submitted]) {
    await admin.send({ topic, acks: -1, messages: [{ key: "seed", value: randomBytes(64) }] });
  }
}, 60_000);

afterAll(async () => {
  await admin?.disconnect();
});

describe("partners", () => {
  const hotline = () => client(partnerPrincipal("hotline-uk"));
  const hotlineGroup = () => `${namespace}.partner-sink.hotline-uk`;

  it("a partner reads its own feed through its own consumer group", async () => {
    expect(await tryRead(hotline(), names.feed("hotline-uk"), hotlineGroup())).toEqual({ ok: true });
  });

  it("partner A's credentials are refused on partner B's feed topic, whichever group it uses", async () => {
    const own = await tryRead(hotline(), names.feed("industry-x"), hotlineGroup());
    expect(own).toEqual({ ok: false, type: "TOPIC_AUTHORIZATION_FAILED" });
    const theirGroup = `${namespace}.partner-sink.industry-x`;
    expectRefused(await tryRead(hotline(), names.feed("industry-x"), theirGroup), partnerPrincipal("hotline-uk"), theirGroup);
    expect(brokerDenied(partnerPrincipal("hotline-uk"), `Topic:LITERAL:${names.feed("industry-x")}`)).toBe(true);
  });

  it("partner A's credentials are refused on hashes.canonical.v1 and hashes.submitted.v1", async () => {
    expect(await tryRead(hotline(), names.canonical, hotlineGroup())).toEqual({ ok: false, type: "TOPIC_AUTHORIZATION_FAILED" });
    expect(await tryRead(hotline(), names.submitted, hotlineGroup())).toEqual({ ok: false, type: "TOPIC_AUTHORIZATION_FAILED" });
  });

  it("a partner cannot write, not even to its own feed, and sees no topic but its own", async () => {
    const write = await tryWrite(hotline(), names.feed("hotline-uk"));
    expect(write.ok).toBe(false);
    expect(REFUSED).toContain((write as { type: string }).type);
    const kafka = hotline();
    const a = kafka.admin();
    await a.connect();
    try {
      const visible = (await a.listTopics()).filter((t) => t.startsWith(`${namespace}.`));
      expect(visible).toEqual([names.feed("hotline-uk")]);
    } finally {
      await a.disconnect();
    }
  });

  it("a wrong password is refused at authentication", async () => {
    const attempt = await tryRead(client(partnerPrincipal("hotline-uk"), "not-the-password"), names.feed("hotline-uk"), hotlineGroup());
    expect(attempt).toEqual({ ok: false, type: "SASL_AUTHENTICATION_FAILED" });
  });

  it("the broker takes TLS only, with a certificate from the local CA", async () => {
    // The right credentials, but in the clear: the broker expects a TLS handshake and drops the connection.
    const clear = client(partnerPrincipal("hotline-uk"), undefined, false).admin();
    await expect(clear.connect()).rejects.toThrow(/Closed connection/);
    await clear.disconnect();
    // A client that trusts only the public CAs refuses the broker's certificate before any password is sent.
    const untrusted = client(partnerPrincipal("hotline-uk"), undefined, true).admin();
    await expect(untrusted.connect()).rejects.toThrow(/certificate/i);
    await untrusted.disconnect();
    // With the local CA the same principal gets through: the first test of this block.
  });

  it("rotating a partner's password: the old one is refused at once, the new one works", async () => {
    const partnerId = `rot-${randomBytes(3).toString("hex")}`;
    const principal = partnerPrincipal(partnerId);
    await onboardPartner(partnerId, namespace);
    const before = principalEnv(principal).KAFKA_SASL_PASSWORD;
    await promisify(execFile)(`${REPO_ROOT}infra/stack.sh`, ["principal", "--rotate", principal], { timeout: 120_000 });
    const after = principalEnv(principal).KAFKA_SASL_PASSWORD;
    expect(after).not.toBe(before);
    const old = client(principal, before).admin();
    await expect(old.connect()).rejects.toThrow(/SASL SCRAM SHA512 authentication failed/);
    await old.disconnect();
    const current = client(principal, after).admin();
    await current.connect();
    await current.disconnect();
    // Rotating a principal the cluster does not have is refused, rather than creating it.
    await expect(promisify(execFile)(`${REPO_ROOT}infra/stack.sh`, ["principal", "--rotate", `partner-none-${partnerId}`])).rejects.toThrow(
      /no principal/,
    );
  }, 120_000);

  it("offboarding: revoked ACLs cut a partner off, retired credentials no longer authenticate", async () => {
    const partnerId = `gone-${randomBytes(3).toString("hex")}`;
    const principal = partnerPrincipal(partnerId);
    await onboardPartner(partnerId, namespace); // credentials (infra/stack.sh principal) and ACLs
    const feed = kafkaAs("test-access-feed").admin();
    await feed.connect();
    try {
      await feed.createTopics({ topics: [{ topic: names.feed(partnerId), numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true });
    } finally {
      await feed.disconnect();
    }
    await admin.send({ topic: names.feed(partnerId), acks: -1, messages: [{ key: "seed", value: randomBytes(64) }] });
    const group = `${namespace}.partner-sink.${partnerId}`;
    expect(await tryRead(client(principal), names.feed(partnerId), group)).toEqual({ ok: true });

    const password = principalEnv(principal).KAFKA_SASL_PASSWORD;
    const operator = kafkaAs("test-access-revoke").admin();
    await operator.connect();
    try {
      // READ+DESCRIBE on the feed, READ on the group, WRITE+DESCRIBE on its feedback topic
      expect(await revokePrincipalAccess(operator, principal)).toBe(5);
    } finally {
      await operator.disconnect();
    }
    expectRefused(await tryRead(client(principal, password), names.feed(partnerId), group), principal, group);

    await promisify(execFile)(`${REPO_ROOT}infra/stack.sh`, ["principal", "--retire", principal], { timeout: 120_000 });
    expect(await tryRead(client(principal, password), names.feed(partnerId), group)).toEqual({
      ok: false,
      type: "SASL_AUTHENTICATION_FAILED",
    });
  }, 120_000);
});

describe("agencies", () => {
  const met = () => client(agencyPrincipal("met-police"));

  it("an agency principal writes submissions and nothing else", async () => {
    expect(await tryWrite(met(), names.submitted)).toEqual({ ok: true });
    for (const topic of [names.canonical, names.rejected, names.feed("hotline-uk")]) {
      const attempt = await tryWrite(met(), topic);
      expect(attempt, topic).toEqual({ ok: false, type: "TOPIC_AUTHORIZATION_FAILED" });
    }
    const group = uniqueName(`${namespace}.agency`);
    expectRefused(await tryRead(met(), names.submitted, group), agencyPrincipal("met-police"), group);
  });
});

describe("hub services", () => {
  it("each service reaches only what its stage needs", async () => {
    const ingest = client(servicePrincipal("ingest"));
    const dedup = client(servicePrincipal("dedup"));
    const distribution = client(servicePrincipal("distribution"));
    // ingest produces submissions but cannot read them back or write canonical records
    expect(await tryWrite(ingest, names.submitted)).toEqual({ ok: true });
    expect(await tryWrite(ingest, names.canonical)).toEqual({ ok: false, type: "TOPIC_AUTHORIZATION_FAILED" });
    // dedup turns submissions into canonical records but cannot write a partner's feed
    expect(await tryWrite(dedup, names.canonical)).toEqual({ ok: true });
    expect(await tryWrite(dedup, names.feed("hotline-uk"))).toEqual({ ok: false, type: "TOPIC_AUTHORIZATION_FAILED" });
    // distribution writes feeds but cannot forge submissions
    expect(await tryWrite(distribution, names.feed("industry-x"))).toEqual({ ok: true });
    expect(await tryWrite(distribution, names.submitted)).toEqual({ ok: false, type: "TOPIC_AUTHORIZATION_FAILED" });
    // and a service's consumer group is its own
    const theirs = `${namespace}.hashrelay-distribution`;
    expectRefused(await tryRead(dedup, names.canonical, theirs), servicePrincipal("dedup"), theirs);
  }, 60_000);
});

describe("operator CLI", () => {
  const run = promisify(execFile);
  const cli = (args: string[], env: Record<string, string>) =>
    run(`${REPO_ROOT}bin/hashrelay`, args, { env: { ...process.env, ...env }, timeout: 60_000 }).then((r) => r.stdout);

  async function aclsOf(principal: string): Promise<string[]> {
    const admin = kafkaAs("test-access-describe").admin();
    await admin.connect();
    try {
      const { resources } = await admin.describeAcls({
        principal: `User:${principal}`,
        resourceType: kafkajs.AclResourceTypes.ANY,
        resourcePatternType: kafkajs.ResourcePatternTypes.ANY,
        operation: kafkajs.AclOperationTypes.ANY,
        permissionType: kafkajs.AclPermissionTypes.ANY,
      });
      const opName = new Map(Object.entries(kafkajs.AclOperationTypes).map(([name, code]) => [code as number, name]));
      return resources.flatMap((r) => r.acls.map((a) => `${r.resourceName} ${opName.get(a.operation) ?? a.operation}`)).sort();
    } finally {
      await admin.disconnect();
    }
  }

  it("access apply grants every registered partner; access revoke takes a partner's grants away", async () => {
    const db = await freshDatabase("access");
    try {
      const partnerId = `cli-${randomBytes(3).toString("hex")}`;
      await registerPartner(db.pool, { partnerId, name: "Synthetic CLI partner" });
      const ns = uniqueName("acl");
      const env = { DATABASE_URL: db.url };
      // The namespace's topics without any ACLs: access apply grants them, and writes its audit event to <ns>.audit.v1.
      expect(await cli(["topics", "--namespace", ns, "--partitions", "1"], env)).toContain(`${ns}.audit.v1`);
      const dry = await cli(["access", "apply", "--namespace", ns, "--dry-run"], env);
      expect(dry).toContain(`partner-${partnerId}\tREAD\ttopic ${ns}.feed.${partnerId}.v1`);
      expect(await aclsOf(partnerPrincipal(partnerId))).toEqual([]); // a dry run grants nothing

      expect(await cli(["access", "apply", "--namespace", ns], env)).toMatch(/\d+ grants applied/);
      expect(await aclsOf(partnerPrincipal(partnerId))).toEqual(
        [
          `${ns}.feed.${partnerId}.v1 DESCRIBE`,
          `${ns}.feed.${partnerId}.v1 READ`,
          `${ns}.partner-sink.${partnerId} READ`,
          `${ns}.feedback.${partnerId}.v1 DESCRIBE`,
          `${ns}.feedback.${partnerId}.v1 WRITE`,
        ].sort(),
      );
      expect(await aclsOf("hashrelay-dedup")).toContain(`${ns}.hashes.submitted.v1 READ`);

      expect(await cli(["access", "revoke", "--partner", partnerId, "--namespace", ns, "--actor", "alice"], env)).toContain(
        `5 ACLs of partner-${partnerId} removed`,
      );
      expect(await aclsOf(partnerPrincipal(partnerId))).toEqual([]);

      // Both changes are in the namespace's audit log (the dry run is not).
      const codec = new AvroCodec();
      const events = (await readTopic(kafkaAs("test-access-audit"), topicNames(ns).audit, (ms) => ms.length >= 2)).map(
        (m) => codec.decode("AuditEvent", m.value).value,
      );
      expect(events.map((e) => e.action).sort()).toEqual(["access.applied", "access.revoked"]);
      const applied = events.find((e) => e.action === "access.applied");
      expect(applied?.subjectId.split(",")).toContain(partnerPrincipal(partnerId));
      expect(applied?.detail).toMatchObject({ namespace: ns });
      expect(events.find((e) => e.action === "access.revoked")).toMatchObject({
        service: "admin",
        actor: "alice",
        subjectKind: "principal",
        subjectId: partnerPrincipal(partnerId),
        detail: { aclsRemoved: "5" },
      });
    } finally {
      await db.drop();
    }
  }, 120_000);
});
