/**
 * What every step of `make demo` shares: the run's stamp, namespace, topic names and work
 * directory, the local stack's settings, and the progress output. Everything the demo makes is
 * named after the stamp, so two runs never share a database, topic or key file.
 */
import { join } from "node:path";
import { REPO_ROOT, effectiveEnv, localPrincipalEnv } from "../services/shared/config.ts";
import type { KafkaConnectionSettings, KafkaCredentials } from "../services/shared/kafka.ts";
import { ADMIN_PRINCIPAL } from "../services/shared/kafka-access.ts";
import { AvroCodec } from "../services/shared/wire/codec.ts";
import { topicNames } from "../services/shared/topics.ts";

export const IMAGES = Number(process.env["DEMO_IMAGES"] ?? 400);
export const env = effectiveEnv();
export const stamp = new Date().toISOString().replace(/\D/g, "").slice(0, 14);
export const namespace = `demo-${stamp}`;
export const names = topicNames(namespace);
export const pseudonymSecret = `demo-${stamp}-pseudonym-secret`;
export const workDir = join(REPO_ROOT, ".stack", "demo", stamp);
export const codec = new AvroCodec();
export const step = (msg: string) => console.log(`\n▶ ${msg}`);
export const info = (msg: string) => console.log(`  ${msg}`);

export function need(name: string): string {
  const v = env[name];
  if (!v) throw new Error(`${name} is not set: run \`make up\` first (make demo does)`);
  return v;
}

/** Where the local broker is and how to reach it (TLS with the stack's own CA), without credentials. */
export function brokerSettings(): KafkaConnectionSettings {
  const caFile = env["KAFKA_SSL_CA_FILE"];
  return {
    KAFKA_BROKERS: need("KAFKA_BROKERS").split(","),
    KAFKA_SSL: env["KAFKA_SSL"] === "true" ? "true" : "false",
    ...(caFile ? { KAFKA_SSL_CA_FILE: caFile } : {}),
  };
}

/**
 * The hub admin's Kafka credentials on the local stack (`make up` writes them). Only the demo's own
 * client uses them; the services pick their own principals' credentials, so none are passed on.
 */
export function adminCredentials(): {
  KAFKA_SASL_MECHANISM?: KafkaCredentials["mechanism"];
  KAFKA_SASL_USERNAME: string;
  KAFKA_SASL_PASSWORD: string;
} {
  const creds = localPrincipalEnv(ADMIN_PRINCIPAL);
  const password = creds["KAFKA_SASL_PASSWORD"];
  if (!password) throw new Error(`no Kafka credentials for ${ADMIN_PRINCIPAL}: run \`make up\` first (make demo does)`);
  const mechanism = env["KAFKA_SASL_MECHANISM"] as KafkaCredentials["mechanism"] | undefined;
  return { ...(mechanism ? { KAFKA_SASL_MECHANISM: mechanism } : {}), KAFKA_SASL_USERNAME: ADMIN_PRINCIPAL, KAFKA_SASL_PASSWORD: password };
}

export async function waitUntil(what: string, probe: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const start = Date.now();
  let dots = 0;
  while (!(await probe().catch(() => false))) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    if (++dots % 10 === 0) process.stdout.write(".");
    await new Promise((r) => setTimeout(r, 300));
  }
  if (dots >= 10) process.stdout.write("\n");
  info(`${what} (${((Date.now() - start) / 1000).toFixed(1)} s)`);
}
