import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError } from "./errors.ts";
import { accessPlan, agencyGrants, consumerGroups, partnerGrants, serviceGrants, toAclEntry } from "./kafka-access.ts";
import type { AccessGrant } from "./kafka-access.ts";
import { kafkaConnection } from "./kafka.ts";
import { topicNames } from "./topics.ts";

/** Does a grant cover this topic name (exact, or by prefix)? */
const covers = (g: AccessGrant, topic: string) =>
  g.resource === "topic" && (g.pattern === "literal" ? g.name === topic : topic.startsWith(g.name));

describe("access plan", () => {
  const ns = "t-1";
  const names = topicNames(ns);
  const plan = accessPlan({ names, namespace: ns, partners: ["hotline-uk", "industry-x"], agencies: ["met-police"] });
  const of = (principal: string) => plan.filter((g) => g.principal === principal);
  const everyTopic = [names.submitted, names.rejected, names.canonical, names.audit, names.feed("hotline-uk"), names.feed("industry-x")];

  it("gives a partner its own feed, consumer group and feedback topic, and nothing else", () => {
    const grants = of("partner-hotline-uk");
    const topics = [...everyTopic, names.feedback("hotline-uk"), names.feedback("industry-x")];
    expect(topics.filter((t) => grants.some((g) => covers(g, t)))).toEqual([names.feed("hotline-uk"), names.feedback("hotline-uk")]);
    const opsOn = (topic: string) => new Set(grants.filter((g) => covers(g, topic)).map((g) => g.operation));
    expect(opsOn(names.feed("hotline-uk"))).toEqual(new Set(["READ", "DESCRIBE"]));
    expect(opsOn(names.feedback("hotline-uk"))).toEqual(new Set(["WRITE", "DESCRIBE"]));
    expect(grants.filter((g) => g.resource === "group").map((g) => g.name)).toEqual([consumerGroups(ns).sink("hotline-uk")]);
    expect(partnerGrants("hotline-uk", names, ns)).toEqual(grants);
  });

  it("lets an agency write submissions only", () => {
    const grants = of("agency-met-police");
    expect(grants).toEqual(agencyGrants("met-police", names));
    expect(grants.every((g) => g.resource === "topic" && g.name === names.submitted && g.pattern === "literal")).toBe(true);
    expect(grants.map((g) => g.operation).sort()).toEqual(["DESCRIBE", "WRITE"]);
  });

  it("keeps each hub service to its stage", () => {
    const can = (service: "ingest" | "dedup" | "distribution", op: string, topic: string) =>
      serviceGrants(service, names, ns).some((g) => g.operation === op && covers(g, topic));
    expect(can("ingest", "WRITE", names.submitted)).toBe(true);
    expect(can("ingest", "READ", names.submitted)).toBe(false);
    expect(can("ingest", "WRITE", names.canonical)).toBe(false);
    expect(can("dedup", "READ", names.submitted)).toBe(true);
    expect(can("dedup", "WRITE", names.canonical)).toBe(true);
    expect(can("dedup", "WRITE", names.feed("hotline-uk"))).toBe(false);
    expect(can("distribution", "READ", names.canonical)).toBe(true);
    expect(can("distribution", "WRITE", names.feed("a-partner-not-yet-known"))).toBe(true);
    expect(can("distribution", "WRITE", names.submitted)).toBe(false);
    expect(can("distribution", "WRITE", names.canonical)).toBe(false);
    expect(can("distribution", "READ", names.feedback("a-partner-not-yet-known"))).toBe(true);
    expect(can("distribution", "WRITE", names.feedback("hotline-uk"))).toBe(false);
    expect(can("dedup", "READ", names.feedback("hotline-uk"))).toBe(false);
  });

  it("keeps feedback topics out of the feed prefix and the feed topics out of the feedback prefix", () => {
    expect(names.feedback("x1").startsWith(names.feedPrefix)).toBe(false);
    expect(names.feed("x1").startsWith(names.feedbackPrefix)).toBe(false);
    const group = serviceGrants("distribution", names, ns).find((g) => g.resource === "group" && g.pattern === "prefixed");
    expect(group?.name).toBe("t-1.hashrelay-distribution-feedback.");
    expect(
      consumerGroups(ns)
        .feedback("hotline-uk")
        .startsWith(group?.name ?? "?"),
    ).toBe(true);
    expect(
      consumerGroups(ns)
        .sink("hotline-uk")
        .startsWith(group?.name ?? "?"),
    ).toBe(false);
  });

  it("confines the distribution feed prefix to feed topics of its own namespace", () => {
    const prefix = serviceGrants("distribution", names, ns).find((g) => g.pattern === "prefixed" && g.resource === "topic");
    expect(prefix?.name).toBe("t-1.feed.");
    expect(covers(prefix as AccessGrant, "t-10.feed.x.v1")).toBe(false);
    expect(covers(prefix as AccessGrant, "feed.x.v1")).toBe(false);
    const unnamespaced = serviceGrants("distribution", topicNames(""), "");
    expect(unnamespaced.find((g) => g.pattern === "prefixed" && g.resource === "topic")?.name).toBe("feed.");
  });

  it("lets distribution describe the partner sinks' groups of its namespace (their lag), and not join them", () => {
    const groups = serviceGrants("distribution", names, ns).filter((g) => g.resource === "group");
    const onSinks = groups.filter((g) => consumerGroups(ns).sink("hotline-uk").startsWith(g.name) && g.pattern === "prefixed");
    expect(onSinks).toEqual([
      { principal: "hashrelay-distribution", resource: "group", name: "t-1.partner-sink.", pattern: "prefixed", operation: "DESCRIBE" },
    ]);
    // READ (joining) only its own group and its feedback consumers' groups, never a sink's.
    expect(groups.filter((g) => g.operation === "READ").map((g) => g.name)).toEqual([
      consumerGroups(ns).distribution,
      consumerGroups(ns).feedbackPrefix,
    ]);
    expect(
      consumerGroups("t-10")
        .sink("x1")
        .startsWith(onSinks[0]?.name ?? ""),
    ).toBe(false);
  });

  it("refuses ids that could widen a grant", () => {
    expect(() => partnerGrants("*", names, ns)).toThrow(/invalid partner id/);
    expect(() => agencyGrants("Met Police", names)).toThrow(/invalid agency id/);
  });

  it("maps grants to kafkajs ACL entries for the named user", () => {
    const entry = toAclEntry({ principal: "partner-x1", resource: "group", name: "g", pattern: "literal", operation: "READ" });
    expect(entry).toMatchObject({ principal: "User:partner-x1", host: "*", resourceName: "g" });
  });
});

describe("kafka connection config", () => {
  it("takes SASL credentials only as a pair", () => {
    expect(() => kafkaConnection({ KAFKA_BROKERS: ["h:1"], KAFKA_SASL_USERNAME: "u" })).toThrow(ConfigError);
    expect(() => kafkaConnection({ KAFKA_BROKERS: ["h:1"], KAFKA_SASL_PASSWORD: "p" })).toThrow(/must be set together/);
    expect(kafkaConnection({ KAFKA_BROKERS: ["h:1"] })).toEqual({ brokers: ["h:1"], ssl: false });
    expect(kafkaConnection({ KAFKA_BROKERS: ["h:1"], KAFKA_SASL_USERNAME: "u", KAFKA_SASL_PASSWORD: "p", KAFKA_SSL: "true" })).toEqual({
      brokers: ["h:1"],
      ssl: true,
      sasl: { mechanism: "scram-sha-512", username: "u", password: "p" },
    });
  });

  it("trusts a CA file only with TLS on, and only when it holds a PEM certificate", () => {
    const dir = mkdtempSync(join(tmpdir(), "hashrelay-ca-"));
    const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    writeFileSync(join(dir, "ca.pem"), pem);
    writeFileSync(join(dir, "key.txt"), "not a certificate");
    try {
      expect(kafkaConnection({ KAFKA_BROKERS: ["h:1"], KAFKA_SSL: "true", KAFKA_SSL_CA_FILE: join(dir, "ca.pem") }).ssl).toEqual({
        ca: [pem],
      });
      expect(() => kafkaConnection({ KAFKA_BROKERS: ["h:1"], KAFKA_SSL_CA_FILE: join(dir, "ca.pem") })).toThrow(/KAFKA_SSL is not true/);
      expect(() => kafkaConnection({ KAFKA_BROKERS: ["h:1"], KAFKA_SSL: "true", KAFKA_SSL_CA_FILE: join(dir, "missing.pem") })).toThrow(
        /cannot be read \(ENOENT\)/,
      );
      expect(() => kafkaConnection({ KAFKA_BROKERS: ["h:1"], KAFKA_SSL: "true", KAFKA_SSL_CA_FILE: join(dir, "key.txt") })).toThrow(
        ConfigError,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
