/**
 * Hub administration CLI: database migrations, topic provisioning, key generation, and the
 * registration of agencies, partners and their keys. Run as `bin/hashrelay <command>`.
 * Every command that changes the hub writes one AuditEvent to audit.v1 (audit.ts) as --actor;
 * when that write fails the change stands, and the command says so and exits 3.
 * This file holds the options and helpers every command group shares (actor, namespace, the hub
 * database, the admin's Kafka client, the audit wiring, exit codes) and assembles the program;
 * each command group is a module in commands/.
 */
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { commonConfigShape, effectiveEnv, loadConfig, kafkaConfigShape } from "../shared/config.ts";
import { ADMIN_PRINCIPAL } from "../shared/kafka-access.ts";
import { HashrelayError } from "../shared/errors.ts";
import { createKafka, kafkaConnection } from "../shared/kafka.ts";
import { SHARED_MIGRATIONS, createPool, inTransaction, migrate } from "../shared/postgres.ts";
import type { PoolClient } from "../shared/postgres.ts";
import { auditMessage } from "../shared/audit.ts";
import { AvroCodec } from "../shared/wire/codec.ts";
import type { AuditEvent } from "../shared/wire/records.ts";
import { topicNames } from "../shared/topics.ts";
import { ADMIN_MIGRATIONS, flushAuditOutbox, queueAuditMessage } from "./audit-outbox.ts";
import { AuditNotWrittenError, AuditQueuedError, defaultActor, writeAuditEvent } from "./audit.ts";
import { addAccessCommands } from "./commands/access.ts";
import { addAgencyCommands } from "./commands/agencies.ts";
import { addAuditCommands } from "./commands/audit.ts";
import { addConsoleCommands } from "./commands/console.ts";
import { addDlqCommands } from "./commands/dlq.ts";
import { addHashCommands } from "./commands/hashes.ts";
import { addKeyCommands } from "./commands/keys.ts";
import { addMigrateCommand } from "./commands/migrate.ts";
import { addPartnerCommands } from "./commands/partners.ts";
import { addPolicyCommands } from "./commands/policies.ts";
import { addReviewCommands } from "./commands/review.ts";
import { addTopicsCommand } from "./commands/topics.ts";

/** The operator's Kafka client: the hub admin principal (KAFKA_SASL_*, or the local stack's hashrelay-admin). */
export function adminKafka(retries?: number) {
  return createKafka({
    ...kafkaConnection(loadConfig("hashrelay-admin", kafkaConfigShape, effectiveEnv(process.env, ADMIN_PRINCIPAL))),
    clientId: "hashrelay-admin",
    ...(retries !== undefined ? { retries } : {}),
  });
}

/** `--namespace`, for a command that reads or writes the topics of one namespace. */
export function namespaceOption(cmd: Command): Command {
  return cmd.option("--namespace <ns>", "topic namespace prefix (TOPIC_NAMESPACE)", process.env["TOPIC_NAMESPACE"] ?? "");
}

/** Options of a command that changes the hub: who does it, and which namespace's audit.v1 records it. */
export interface AuditOptions {
  actor: string;
  namespace: string;
}

export function audited(cmd: Command, options: { namespace?: boolean } = { namespace: true }): Command {
  cmd.option("--actor <name>", "the operator recorded in audit.v1", defaultActor());
  if (options.namespace)
    cmd.option(
      "--namespace <ns>",
      "topic namespace prefix (TOPIC_NAMESPACE); audit.v1 is written there",
      process.env["TOPIC_NAMESPACE"] ?? "",
    );
  return cmd;
}

/** Checks the audit options before anything changes, so a bad --namespace or --actor changes nothing. */
export function auditTarget(o: AuditOptions): { actor: string; topics: ReturnType<typeof topicNames> } {
  if (!o.actor.trim()) throw new Error("--actor must not be empty");
  return { actor: o.actor.trim(), topics: topicNames(o.namespace) };
}

type Topics = ReturnType<typeof topicNames>;

/**
 * Makes a hub change and queues its audit event in one transaction: either both are stored or
 * neither. Call sendAudit afterwards to deliver it.
 */
export async function commitAudited<T>(
  topics: Topics,
  change: (db: PoolClient) => Promise<T>,
  event: (result: T) => AuditEvent,
): Promise<{ result: T; event: AuditEvent }> {
  return withDb((pool) =>
    inTransaction(pool, async (client) => {
      const result = await change(client);
      const e = event(result);
      await queueAuditMessage(client, { ...auditMessage(new AvroCodec(), topics, e), action: e.action });
      return { result, event: e };
    }),
  );
}

/** Sends the queued audit events (this command's and any left by earlier ones); AuditQueuedError (exit 3) when Kafka does not take them. */
export async function sendAudit(topics: Topics, event: AuditEvent): Promise<void> {
  try {
    // Fewer retries than a service: an unreachable broker is reported in seconds, not a minute.
    const sent = await withDb((pool) => flushAuditOutbox(pool, adminKafka(3)));
    if (sent > 1) console.log(`audit: ${sent - 1} event(s) queued by earlier commands sent too`);
  } catch (err) {
    throw new AuditQueuedError(topics.audit, event, err);
  }
  console.log(`audit: ${event.action} ${event.subjectId} by ${event.actor} written to ${topics.audit}`);
}

/**
 * The audit event of a change outside the hub database (Kafka ACLs, a DLQ re-drive), made already:
 * queued and sent like the others; if the database cannot take it either, written straight to
 * Kafka (AuditNotWrittenError, exit 3, printing the event, when that fails too).
 */
export async function recordAudit(topics: Topics, event: AuditEvent): Promise<void> {
  let queued = false;
  try {
    await withDb((pool) => queueAuditMessage(pool, { ...auditMessage(new AvroCodec(), topics, event), action: event.action }));
    queued = true;
  } catch {
    /* no hub database reachable: fall back to writing the event directly */
  }
  if (queued) return sendAudit(topics, event);
  await writeAuditEvent(adminKafka(3), new AvroCodec(), topics, event);
  console.log(`audit: ${event.action} ${event.subjectId} by ${event.actor} written to ${topics.audit}`);
}

export const DISTRIBUTION_MIGRATIONS_DIR = fileURLToPath(new URL("../distribution/migrations/", import.meta.url));
export const INGEST_MIGRATIONS_DIR = fileURLToPath(new URL("../ingest/migrations/", import.meta.url));
export const dbConfig = () => loadConfig("hashrelay-admin", { DATABASE_URL: commonConfigShape.DATABASE_URL });

/** Opens the hub database (its shared migrations applied) for one piece of work, and closes it. */
export async function withDb<T>(work: (pool: ReturnType<typeof createPool>) => Promise<T>): Promise<T> {
  const pool = createPool(dbConfig().DATABASE_URL, { max: 2, applicationName: "hashrelay-admin" });
  try {
    await migrate(pool, [{ namespace: "shared", dir: SHARED_MIGRATIONS }, ADMIN_MIGRATIONS]);
    return await work(pool);
  } finally {
    await pool.end();
  }
}

export function parseDate(value: string): Date {
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) throw new Error(`not a date: ${value}`);
  return d;
}

export function buildCli(): Command {
  const program = new Command("hashrelay").description("hashrelay hub administration").showHelpAfterError();
  addMigrateCommand(program);
  addTopicsCommand(program);
  addHashCommands(program);
  addAgencyCommands(program);
  addPartnerCommands(program);
  addAccessCommands(program);
  addPolicyCommands(program);
  addKeyCommands(program);
  addDlqCommands(program);
  addAuditCommands(program);
  addReviewCommands(program);
  addConsoleCommands(program);
  return program;
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  buildCli()
    .parseAsync(process.argv)
    .catch((err: unknown) => {
      const reason = err instanceof HashrelayError ? `[${err.reason}] ` : "";
      console.error(`hashrelay: ${reason}${err instanceof Error ? err.message : String(err)}`);
      // 3: the change was made but its audit event is not (yet) in audit.v1; 1: the command failed.
      process.exitCode = err instanceof AuditNotWrittenError || err instanceof AuditQueuedError ? 3 : 1;
    });
}
