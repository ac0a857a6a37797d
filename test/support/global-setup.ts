/**
 * Runs once before the suite. Two ways to reach a real stack:
 * - default: the local processes started by `make up` (infra/stack.sh); their addresses are in
 *   .stack/env and are exported here so every test worker sees them;
 * - HASHRELAY_STACK=testcontainers, where a Docker engine exists: infra/compose.yml is brought
 *   up through testcontainers on the same ports and credentials, and taken down afterwards.
 * Variables already set in the environment win, so CI or a developer can point tests elsewhere.
 */
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { localStackEnv } from "../../services/shared/config.ts";

const COMPOSE_ENV: Record<string, string> = {
  KAFKA_BROKERS: "127.0.0.1:19092",
  KAFKA_SASL_MECHANISM: "scram-sha-512",
  KAFKA_SSL: "true",
  KAFKA_SSL_CA_FILE: fileURLToPath(new URL("../../.stack/kafka/tls/ca.pem", import.meta.url)),
  KAFKA_PRINCIPALS_DIR: fileURLToPath(new URL("../../.stack/kafka/principals", import.meta.url)),
  DATABASE_URL: "postgres://postgres@127.0.0.1:15432/hashrelay",
  S3_ENDPOINT: "http://127.0.0.1:19000",
  S3_REGION: "us-east-1",
  S3_ACCESS_KEY_ID: "hashrelay-local",
  S3_SECRET_ACCESS_KEY: "hashrelay-local-secret",
  S3_BUCKET: "hashrelay",
};

export default async function setup(): Promise<(() => Promise<void>) | void> {
  if (process.env["HASHRELAY_STACK"] === "testcontainers") {
    // The compose broker formats its storage with these principals (infra/kafka/compose-start.sh).
    execFileSync(fileURLToPath(new URL("../../infra/stack.sh", import.meta.url)), ["credentials"], { stdio: "inherit" });
    const { DockerComposeEnvironment, Wait } = await import("testcontainers");
    const infra = fileURLToPath(new URL("../../infra/", import.meta.url));
    const environment = await new DockerComposeEnvironment(infra, "compose.yml")
      .withProjectName(`hashrelay-test-${process.pid}`)
      .withWaitStrategy("kafka-1", Wait.forHealthCheck())
      .withWaitStrategy("postgres-1", Wait.forHealthCheck())
      .up();
    for (const [k, v] of Object.entries(COMPOSE_ENV)) process.env[k] ??= v;
    return async () => {
      await environment.down({ removeVolumes: true });
    };
  }
  for (const [key, value] of Object.entries(localStackEnv())) {
    if (process.env[key] === undefined) process.env[key] = value;
  }
}
