/**
 * Access to the real local stack for tests that cross a service boundary: a fresh PostgreSQL
 * database per test file and a fresh topic namespace, so files can run side by side.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { effectiveEnv } from "../../services/shared/config.ts";
import { createKafka, provisionTopics } from "../../services/shared/kafka.ts";
import { SHARED_MIGRATIONS, createPool, migrate } from "../../services/shared/postgres.ts";
import type { Pool } from "../../services/shared/postgres.ts";
import { LOCAL_TOPIC_PLAN, coreTopicSpecs, feedTopicSpec, topicNames } from "../../services/shared/topics.ts";
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

export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;
}

export interface TestDatabase {
  readonly url: string;
  readonly pool: Pool;
  drop(): Promise<void>;
}

/** Creates an empty database on the stack's server, with the shared migrations applied. */
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
  await migrate(pool, [{ namespace: "shared", dir: SHARED_MIGRATIONS }]);
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

/** Provisions the core topics (and given partner feeds) under a new namespace. */
export async function freshTopics(partners: string[] = [], partitions = 3): Promise<{ namespace: string; names: TopicNames }> {
  const namespace = uniqueName("t");
  const names = topicNames(namespace);
  const plan = { ...LOCAL_TOPIC_PLAN, partitions };
  const admin = createKafka({ brokers: stackEnv().brokers, clientId: "test-provision" }).admin();
  await admin.connect();
  try {
    await provisionTopics(admin, [...coreTopicSpecs(plan, names), ...partners.map((p) => feedTopicSpec(p, plan, names))]);
  } finally {
    await admin.disconnect();
  }
  return { namespace, names };
}
