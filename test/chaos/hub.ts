/**
 * The hub the chaos run breaks: a hub database and one database per partner on the chaos stack's
 * PostgreSQL, synthetic agencies (three forces and the NCA as grading authority) with fresh keys, a
 * hub key, two Kafka partners with their policies, the namespace's topics (replicated as the
 * cluster allows) and ACLs; and the service instances: one ingest, and two each of dedup,
 * distribution and each partner's sink, every one a process with its own Kafka principal.
 */
import { randomBytes } from "node:crypto";
import type { Kafka } from "kafkajs";
import { ADMIN_MIGRATIONS } from "../../services/admin/audit-outbox.ts";
import { registerPartner } from "../../services/admin/registry.ts";
import { DISTRIBUTION_MIGRATIONS } from "../../services/distribution/main.ts";
import type { PartnerPolicy } from "../../services/distribution/policy.ts";
import { setPolicy } from "../../services/distribution/policy-store.ts";
import type { AgencySigner } from "../../services/force-cli/client.ts";
import { clusterTopicPlan, provisionTopics } from "../../services/shared/kafka.ts";
import { accessPlan, applyAccessPlan } from "../../services/shared/kafka-access.ts";
import { SHARED_MIGRATIONS, createPool, migrate } from "../../services/shared/postgres.ts";
import type { Pool } from "../../services/shared/postgres.ts";
import { coreTopicSpecs, topicNames } from "../../services/shared/topics.ts";
import type { TopicNames } from "../../services/shared/topics.ts";
import { registerTestAgency } from "../support/agencies.ts";
import { hotlinePolicy, industryPolicy } from "../support/fixtures.ts";
import { createHubKey } from "../support/pipeline.ts";
import type { HubKey } from "../support/pipeline.ts";
import type { InstanceSpec } from "./fleet.ts";
import { adminClient, adminKafka } from "./stack.ts";
import type { ChaosStack } from "./stack.ts";

export const FORCES = ["force-a", "force-b", "force-c"] as const;
export const AUTHORITY = "nca";

export interface ChaosHub {
  readonly namespace: string;
  readonly names: TopicNames;
  readonly hubUrl: string;
  readonly hub: Pool;
  readonly partners: Record<string, { url: string; pool: Pool }>;
  readonly signers: Record<string, AgencySigner>;
  readonly hubKey: HubKey;
  readonly policies: Omit<PartnerPolicy, "version">[];
  readonly kafka: Kafka;
  /** Drops the run's databases and topics (a passing run leaves nothing behind). */
  drop(): Promise<void>;
}

export async function setUpHub(stack: ChaosStack, stamp: string): Promise<ChaosHub> {
  const namespace = `chaos-${stamp}`;
  const names = topicNames(namespace);
  const suffix = `${stamp}_${randomBytes(2).toString("hex")}`;
  const policies: Omit<PartnerPolicy, "version">[] = [
    hotlinePolicy("hotline-uk", { feedPartitions: 3 }),
    // Kafka and S3: every distribution instance exports on a timer through the faults (reconcile-exports.ts).
    industryPolicy("industry-x", { feedPartitions: 3, delivery: "both" }),
  ];
  const dbNames = {
    hub: `chaos_hub_${suffix}`,
    ...Object.fromEntries(policies.map((p) => [p.partnerId, `chaos_${p.partnerId.replace(/-/g, "_")}_${suffix}`])),
  };
  const root = await adminClient(stack.env["DATABASE_URL"] as string);
  for (const db of Object.values(dbNames)) await root.query(`CREATE DATABASE ${db}`);
  await root.end();
  const urlOf = (db: string) => {
    const u = new URL(stack.env["DATABASE_URL"] as string);
    u.pathname = `/${db}`;
    return u.toString();
  };
  const hubUrl = urlOf(dbNames.hub);
  const hub = createPool(hubUrl, { max: 4, applicationName: "hashrelay-chaos" });
  await migrate(hub, [
    { namespace: "shared", dir: SHARED_MIGRATIONS },
    ADMIN_MIGRATIONS,
    { namespace: "distribution", dir: DISTRIBUTION_MIGRATIONS },
  ]);
  const hubKey = await createHubKey({ url: hubUrl, pool: hub, drop: async () => undefined });
  const signers: Record<string, AgencySigner> = {};
  for (const id of FORCES) signers[id] = await registerTestAgency(hub, id);
  signers[AUTHORITY] = await registerTestAgency(hub, AUTHORITY, { kind: "nca", authority: true });
  for (const p of policies) {
    await registerPartner(hub, { partnerId: p.partnerId, name: `Synthetic ${p.partnerId}` });
    await setPolicy(hub, p);
  }
  const partners = Object.fromEntries(
    policies.map((p) => {
      const url = urlOf(dbNames[p.partnerId as keyof typeof dbNames]);
      return [p.partnerId, { url, pool: createPool(url, { max: 3, applicationName: "hashrelay-chaos" }) }];
    }),
  );
  const kafka = adminKafka(stack);
  const admin = kafka.admin();
  await admin.connect();
  try {
    await provisionTopics(admin, coreTopicSpecs(await clusterTopicPlan(admin, 6), names));
    const partnerIds = policies.map((p) => p.partnerId);
    await applyAccessPlan(admin, accessPlan({ names, namespace, partners: partnerIds, agencies: [] }));
  } finally {
    await admin.disconnect();
  }
  return {
    namespace,
    names,
    hubUrl,
    hub,
    partners,
    signers,
    hubKey,
    policies,
    kafka,
    async drop() {
      for (const p of Object.values(partners)) await p.pool.end().catch(() => undefined);
      await hub.end().catch(() => undefined);
      const c = await adminClient(stack.env["DATABASE_URL"] as string);
      for (const db of Object.values(dbNames)) await c.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`).catch(() => undefined);
      await c.end();
      const a = kafka.admin();
      await a.connect();
      const mine = (await a.listTopics()).filter((t) => t.startsWith(`${namespace}.`));
      if (mine.length) await a.deleteTopics({ topics: mine }).catch(() => undefined);
      await a.disconnect();
    },
  };
}

/**
 * The instances: `instances` of each consumer service (dedup, distribution, each partner's sink)
 * and one ingest. Small fetches and a short session timeout, so faults land inside transactions
 * and a dead member's partitions move on quickly.
 */
export function instanceSpecs(stack: ChaosStack, h: ChaosHub, o: { instances: number; ingestPort: number }): InstanceSpec[] {
  const env = stack.env;
  const common: Record<string, string> = {
    KAFKA_BROKERS: env["KAFKA_BROKERS"] as string,
    KAFKA_SSL: "true",
    KAFKA_SSL_CA_FILE: env["KAFKA_SSL_CA_FILE"] as string,
    KAFKA_SASL_MECHANISM: "scram-sha-512",
    // Each service reads its own principal's password from this folder (services/shared/config.ts).
    KAFKA_PRINCIPALS_DIR: env["KAFKA_PRINCIPALS_DIR"] as string,
    DATABASE_URL: h.hubUrl,
    TOPIC_NAMESPACE: h.namespace,
    LOG_LEVEL: "warn",
    CONSUMER_MAX_BATCH_BYTES: "32768",
    CONSUMER_SESSION_TIMEOUT_MS: "6000",
    S3_ENDPOINT: env["S3_ENDPOINT"] as string,
    S3_REGION: env["S3_REGION"] ?? "us-east-1",
    S3_ACCESS_KEY_ID: env["S3_ACCESS_KEY_ID"] as string,
    S3_SECRET_ACCESS_KEY: env["S3_SECRET_ACCESS_KEY"] as string,
    S3_BUCKET: env["S3_BUCKET"] as string,
    S3_FORCE_PATH_STYLE: "true",
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
    KAFKAJS_NO_PARTITIONER_WARNING: "1",
  };
  const n = (name: string, i: number) => (o.instances > 1 ? `${name}-${i}` : name);
  const specs: InstanceSpec[] = [
    { name: "ingest", service: "ingest", env: { ...common, INGEST_HOST: "127.0.0.1", INGEST_PORT: String(o.ingestPort) } },
  ];
  for (let i = 1; i <= o.instances; i++) {
    specs.push({ name: n("dedup", i), service: "dedup", env: { ...common } });
    specs.push({
      name: n("distribution", i),
      service: "distribution",
      env: {
        ...common,
        HUB_KEY_ID: h.hubKey.keyId,
        HUB_SIGNING_KEY_FILE: h.hubKey.file,
        DISTRIBUTION_PSEUDONYM_SECRET: `chaos-${h.namespace}-pseudonym-secret`,
        DISTRIBUTION_EXPORT_INTERVAL_MS: "15000",
        DISTRIBUTION_SNAPSHOT_EVERY: "4",
        DISTRIBUTION_POLICY_REFRESH_MS: "2000",
      },
    });
    for (const p of h.policies) {
      specs.push({
        name: n(`sink-${p.partnerId}`, i),
        service: "partner-sink",
        env: {
          ...common,
          PARTNER_ID: p.partnerId,
          PARTNER_DATABASE_URL: (h.partners[p.partnerId] as { url: string }).url,
          HUB_PUBLIC_KEYS: `${h.hubKey.keyId}=${h.hubKey.publicKey.toString("base64")}`,
          PARTNER_BOOTSTRAP: "none",
          PARTNER_HTTP_PORT: "0",
        },
      });
    }
  }
  return specs;
}
