/**
 * Access to the real local stack for tests that cross a service boundary: a fresh PostgreSQL
 * database per test file and a fresh topic namespace, so files can run side by side.
 */
import { execFile, execFileSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import type { S3Client } from "@aws-sdk/client-s3";
import pg from "pg";
import type { Kafka } from "kafkajs";
import { REPO_ROOT, effectiveEnv, localPrincipalEnv } from "../../services/shared/config.ts";
import { ADMIN_PRINCIPAL, accessPlan, applyAccessPlan, partnerGrants, partnerPrincipal } from "../../services/shared/kafka-access.ts";
import { clusterTopicPlan, createKafka, kafkaConnection, provisionTopics } from "../../services/shared/kafka.ts";
import { createS3Client } from "../../services/shared/s3.ts";
import { ADMIN_MIGRATIONS } from "../../services/admin/audit-outbox.ts";
import { SHARED_MIGRATIONS, createPool, migrate } from "../../services/shared/postgres.ts";
import type { Pool } from "../../services/shared/postgres.ts";
import { coreTopicSpecs, feedTopicSpec, topicNames } from "../../services/shared/topics.ts";
import type { TopicNames } from "../../services/shared/topics.ts";

export interface StackEnv {
  readonly brokers: string[];
  readonly databaseUrl: string;
  readonly s3: { endpoint: string; region: string; accessKeyId: string; secretAccessKey: string; bucket: string };
}

export function stackEnv(): StackEnv {
  const env = effectiveEnv();
  const missing = ["KAFKA_BROKERS", "DATABASE_URL", "S3_ENDPOINT", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY", "S3_BUCKET"].filter(
    (k) => !env[k],
  );
  if (missing.length) {
    throw new Error(`the local stack is not configured (${missing.join(", ")} unset): run \`make up\` or \`make test\``);
  }
  return {
    brokers: (env["KAFKA_BROKERS"] as string).split(","),
    databaseUrl: env["DATABASE_URL"] as string,
    s3: {
      endpoint: env["S3_ENDPOINT"] as string,
      region: env["S3_REGION"] ?? "us-east-1",
      accessKeyId: env["S3_ACCESS_KEY_ID"] as string,
      secretAccessKey: env["S3_SECRET_ACCESS_KEY"] as string,
      bucket: env["S3_BUCKET"] as string,
    },
  };
}

/** The environment every hub service process needs on this stack: its brokers, S3, a hub database and a topic namespace. */
export function hubServiceEnv(databaseUrl: string, namespace: string, stack: StackEnv = stackEnv()): Record<string, string> {
  return {
    KAFKA_BROKERS: stack.brokers.join(","),
    DATABASE_URL: databaseUrl,
    TOPIC_NAMESPACE: namespace,
    LOG_LEVEL: "warn",
    S3_ENDPOINT: stack.s3.endpoint,
    S3_REGION: stack.s3.region,
    S3_ACCESS_KEY_ID: stack.s3.accessKeyId,
    S3_SECRET_ACCESS_KEY: stack.s3.secretAccessKey,
    S3_BUCKET: stack.s3.bucket,
  };
}

/** An S3 client for the local stack's S3 server (s3proxy), as the services configure theirs. */
export function stackS3Client(s3: StackEnv["s3"] = stackEnv().s3): S3Client {
  return createS3Client({
    S3_ENDPOINT: s3.endpoint,
    S3_REGION: s3.region,
    S3_ACCESS_KEY_ID: s3.accessKeyId,
    S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
  });
}

/** How the local broker is reached over TLS, as service config (it takes nothing else). */
export function brokerTlsEnv(): { KAFKA_SSL: "true" | "false"; KAFKA_SSL_CA_FILE?: string } {
  const env = effectiveEnv();
  const ca = env["KAFKA_SSL_CA_FILE"];
  return { KAFKA_SSL: env["KAFKA_SSL"] === "true" ? "true" : "false", ...(ca ? { KAFKA_SSL_CA_FILE: ca } : {}) };
}

/**
 * How a principal connects to the local stack's broker, as service config: its credentials
 * (KAFKA_SASL_*) and the broker's TLS settings. Services in tests run as their own principals, so
 * the ACLs are exercised by every pipeline test.
 */
export function principalEnv(principal: string): ReturnType<typeof brokerTlsEnv> & {
  KAFKA_SASL_MECHANISM: "scram-sha-512";
  KAFKA_SASL_USERNAME: string;
  KAFKA_SASL_PASSWORD: string;
} {
  const creds = localPrincipalEnv(principal);
  if (!creds["KAFKA_SASL_PASSWORD"]) {
    throw new Error(`no local Kafka credentials for ${principal}: run \`make up\` (or infra/stack.sh principal ${principal})`);
  }
  return {
    ...brokerTlsEnv(),
    KAFKA_SASL_MECHANISM: "scram-sha-512",
    KAFKA_SASL_USERNAME: principal,
    KAFKA_SASL_PASSWORD: creds["KAFKA_SASL_PASSWORD"],
  };
}

/** A Kafka client with the given principal's credentials (by default the hub admin, a super user). */
export function kafkaAs(clientId: string, principal = ADMIN_PRINCIPAL): Kafka {
  return createKafka({ ...kafkaConnection({ KAFKA_BROKERS: stackEnv().brokers, ...principalEnv(principal) }), clientId });
}

/**
 * Onboards a partner the local stack has no principal for, as an operator would: SCRAM credentials
 * (`infra/stack.sh principal`), then the partner's ACLs in this namespace.
 */
export async function onboardPartner(partnerId: string, namespace: string): Promise<void> {
  // Always asked: a password file can outlive the cluster it was made for (the stack creates only
  // what this cluster lacks, so this is quick when the principal exists).
  await promisify(execFile)(`${REPO_ROOT}infra/stack.sh`, ["principal", partnerPrincipal(partnerId)], { timeout: 120_000 });
  const admin = kafkaAs("test-onboard").admin();
  await admin.connect();
  try {
    await applyAccessPlan(admin, partnerGrants(partnerId, topicNames(namespace), namespace));
  } finally {
    await admin.disconnect();
  }
}

/** Partners whose principals the local stack creates (infra/stack.sh LOCAL_PRINCIPALS). */
export const LOCAL_PARTNERS = ["hotline-uk", "industry-x", "taskforce", "partner-x"];
/** Agencies with a local principal for producing straight to Kafka. */
export const LOCAL_KAFKA_AGENCIES = ["met-police", "nca"];

/**
 * Restarts the stack's Kafka broker, keeping its data: the local process through infra/stack.sh, or
 * the container stack's broker container (HASHRELAY_KAFKA_CONTAINER, set by the global setup).
 */
export async function restartBroker(): Promise<void> {
  const container = process.env["HASHRELAY_KAFKA_CONTAINER"];
  if (container) {
    const { restartKafkaContainer } = await import("./container-stack.ts");
    await restartKafkaContainer(container);
    return;
  }
  const marker = `${REPO_ROOT}.stack/started-by-us`;
  const startedBefore = existsSync(marker) ? readFileSync(marker, "utf8") : null;
  execFileSync(`${REPO_ROOT}infra/stack.sh`, ["down", "kafka"], { stdio: "ignore" });
  await new Promise((r) => setTimeout(r, 2_000));
  execFileSync(`${REPO_ROOT}infra/stack.sh`, ["up", "kafka"], { stdio: "ignore" });
  // The restarted broker must not keep stack.sh's lock: `make test`'s final stop would wait on it.
  execFileSync("flock", ["-n", `${REPO_ROOT}.stack/lib/.stack.lock`, "true"]);
  // Keep `make test`'s record of what it started. None means it started nothing: an empty record
  // would tell `stack.sh stop-started` to stop everything, the stack that was running before included.
  if (startedBefore !== null) writeFileSync(marker, startedBefore);
  else rmSync(marker, { force: true });
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;
}

export interface TestDatabase {
  readonly url: string;
  readonly pool: Pool;
  drop(): Promise<void>;
}

/** Creates an empty database on the stack's server, with the shared and admin migrations applied. */
export async function freshDatabase(prefix = "t"): Promise<TestDatabase> {
  const base = new URL(stackEnv().databaseUrl);
  const name = uniqueName(prefix).replace(/-/g, "_");
  const admin = new pg.Client({ connectionString: base.toString() });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(base.toString());
  url.pathname = `/${name}`;
  const pool = createPool(url.toString(), { max: 4, applicationName: `test-${prefix}` });
  await migrate(pool, [{ namespace: "shared", dir: SHARED_MIGRATIONS }, ADMIN_MIGRATIONS]);
  return {
    url: url.toString(),
    pool,
    async drop() {
      await pool.end();
      const c = new pg.Client({ connectionString: base.toString() });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/** Provisions the core topics (and given partner feeds) under a new namespace, with its ACLs. */
export async function freshTopics(partners: string[] = [], partitions = 3): Promise<{ namespace: string; names: TopicNames }> {
  const namespace = uniqueName("t");
  const names = topicNames(namespace);
  const admin = kafkaAs("test-provision").admin();
  await admin.connect();
  try {
    const plan = await clusterTopicPlan(admin, partitions);
    await provisionTopics(admin, [...coreTopicSpecs(plan, names), ...partners.map((p) => feedTopicSpec(p, plan, names))]);
    // The ACLs `bin/hashrelay access apply` would grant in this namespace.
    const grantees = [...new Set([...LOCAL_PARTNERS, ...partners])];
    await applyAccessPlan(admin, accessPlan({ names, namespace, partners: grantees, agencies: LOCAL_KAFKA_AGENCIES }));
  } finally {
    await admin.disconnect();
  }
  return { namespace, names };
}
