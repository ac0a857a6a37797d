/**
 * Start-up configuration from the environment, validated with zod. A service that cannot work
 * with what it was given stops at once with every problem listed, instead of failing later.
 */
import { readFileSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { ConfigError } from "./errors.ts";

export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/**
 * Variables from .stack/env (written by `make up`), so local runs need no manual exports. A stack
 * kept elsewhere (HASHRELAY_STACK_DIR, as for infra/stack.sh) has its env file there: the containers
 * test pass keeps its own.
 */
export function localStackEnv(path = `${process.env["HASHRELAY_STACK_DIR"] ?? `${REPO_ROOT}.stack`}/env`): Record<string, string> {
  if (!existsSync(path)) return {};
  const env: Record<string, string> = {};
  for (const line of readFileSync(path, "utf8").split("\n")) {
    const match = /^\s*(?:export\s+)?([A-Z0-9_]+)=(.*)$/.exec(line);
    if (match) env[match[1] as string] = (match[2] as string).replace(/^["']|["']$/g, "");
  }
  return env;
}

/**
 * A principal's Kafka credentials on the local stack (`make up` writes one password file per
 * principal under KAFKA_PRINCIPALS_DIR); empty when there is none.
 */
export function localPrincipalEnv(principal: string, stack: Record<string, string> = localStackEnv()): Record<string, string> {
  const dir = process.env["KAFKA_PRINCIPALS_DIR"] ?? stack["KAFKA_PRINCIPALS_DIR"];
  if (!dir || !/^[a-z0-9][a-z0-9-]{1,80}$/.test(principal)) return {};
  const file = `${dir}/${principal}`;
  if (!existsSync(file)) return {};
  return { KAFKA_SASL_USERNAME: principal, KAFKA_SASL_PASSWORD: readFileSync(file, "utf8").trim() };
}

/**
 * The process environment over the local stack's defaults; with a principal, over that principal's
 * local Kafka credentials too (the process environment still wins).
 */
export function effectiveEnv(env: NodeJS.ProcessEnv = process.env, principal?: string): Record<string, string | undefined> {
  const stack = localStackEnv();
  return { ...stack, ...(principal ? localPrincipalEnv(principal, stack) : {}), ...env };
}

const brokers = z
  .union([z.string().min(1), z.array(z.string())])
  .transform((v) => (Array.isArray(v) ? v : v.split(",")).map((b) => b.trim()).filter(Boolean))
  .refine((list) => list.every((b) => /^[^:\s]+:\d+$/.test(b)), "must be host:port[,host:port...]");

/** How to reach the brokers and as whom: what kafkaConnection (services/shared/kafka.ts) takes. */
export const kafkaConfigShape = {
  KAFKA_BROKERS: brokers,
  KAFKA_CLIENT_ID: z.string().min(1).optional(),
  /** SASL for the broker: every principal has its own credentials (services/shared/kafka-access.ts). */
  KAFKA_SASL_MECHANISM: z.enum(["scram-sha-512", "scram-sha-256", "plain"]).optional(),
  KAFKA_SASL_USERNAME: z.string().min(1).optional(),
  KAFKA_SASL_PASSWORD: z.string().min(1).optional(),
  /** TLS to the broker; the local stack's broker takes only TLS (SASL_SSL). */
  KAFKA_SSL: z.enum(["true", "false"]).default("false"),
  /** PEM file of the CA(s) that signed the broker's certificate, when not a public CA (the local stack's own). */
  KAFKA_SSL_CA_FILE: z.string().min(1).optional(),
};

/** How the exactly-once consumers (dedup, distribution, partner-sink) fetch and batch. */
export const consumerConfigShape = {
  /** Largest fetch per partition. */
  CONSUMER_MAX_BATCH_BYTES: z.coerce.number().int().min(1024).default(1_048_576),
  /** How long a silent consumer keeps its partitions; after a crash they move after this long. */
  CONSUMER_SESSION_TIMEOUT_MS: z.coerce.number().int().min(6000).default(30_000),
  /** Most messages applied in one transaction (a round of partitions); a bigger fetch is split. */
  CONSUMER_ROUND_MAX_MESSAGES: z.coerce.number().int().min(1).default(1_000),
  /** Least time between the starts of two rounds while busy: at steady load, fewer and fuller transactions. */
  CONSUMER_ROUND_INTERVAL_MS: z.coerce.number().int().min(0).max(5_000).default(300),
  /**
   * Least time between the starts of two small rounds (a trickle): a trickle shares rounds at this
   * latency. Only the first consumer stage (dedup, default 150) needs it: the later ones receive its
   * rounds as bursts.
   */
  CONSUMER_TRICKLE_INTERVAL_MS: z.coerce.number().int().min(0).max(1_000).default(0),
};

/** Settings every service shares. */
export const commonConfigShape = {
  ...kafkaConfigShape,
  ...consumerConfigShape,
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, "must be a postgres:// URL"),
  TOPIC_NAMESPACE: z
    .string()
    .regex(/^([a-z0-9][a-z0-9-]{0,40})?$/, "lower-case letters, digits and '-'")
    .default(""),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
};

/** Listen address of a service's operational endpoints (ops-http.ts: /metrics, /healthz, /readyz). */
export const opsHost = z.string().min(1).default("127.0.0.1");
/** Their port: 0 takes a free one (logged), for tests and one-off runs; a deployment sets one Prometheus scrapes. */
export const opsPort = z.coerce.number().int().min(0).max(65535).default(0);

export const s3ConfigShape = {
  S3_ENDPOINT: z.string().url().optional(),
  S3_REGION: z.string().default("us-east-1"),
  S3_ACCESS_KEY_ID: z.string().min(1),
  S3_SECRET_ACCESS_KEY: z.string().min(1),
  S3_BUCKET: z.string().min(3),
};

export function loadConfig<S extends z.ZodRawShape>(
  service: string,
  shape: S,
  env: Record<string, unknown> = effectiveEnv(),
): z.infer<z.ZodObject<S>> {
  const parsed = z.object(shape).safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `  ${i.path.join(".") || "(env)"}: ${i.message}`);
    throw new ConfigError(`${service} cannot start; fix these environment variables:\n${problems.join("\n")}`);
  }
  return parsed.data;
}
