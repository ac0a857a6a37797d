/**
 * Hub administration CLI: database migrations, topic provisioning, key generation, and the
 * registration of agencies, partners and their keys. Run as `bin/hashrelay <command>`.
 * Every command that changes the hub writes one AuditEvent to audit.v1 (audit.ts) as --actor;
 * when that write fails the change stands, and the command says so and exits 3.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Command, Option } from "commander";
import { commonConfigShape, effectiveEnv, loadConfig, kafkaConfigShape } from "../shared/config.ts";
import { ADMIN_PRINCIPAL, accessPlan, agencyPrincipal, applyAccessPlan, consumerGroups, partnerPrincipal, revokePrincipalAccess } from "../shared/kafka-access.ts";
import { HashrelayError, ValidationError } from "../shared/errors.ts";
import { createDurableProducer, createKafka, kafkaConnection, provisionTopics, readTopicToEnd } from "../shared/kafka.ts";
import { PgKeyRegistry } from "../shared/key-registry.ts";
import type { KeyOwnerKind } from "../shared/key-registry.ts";
import { SHARED_MIGRATIONS, createPool, inTransaction, migrate } from "../shared/postgres.ts";
import type { PoolClient, Queryable } from "../shared/postgres.ts";
import { auditMessage } from "../shared/audit.ts";
import { ADMIN_MIGRATIONS, flushAuditOutbox, pendingAuditEvents, queueAuditMessage } from "./audit-outbox.ts";
import { formatAuditEvent, matchesAudit } from "./audit-query.ts";
import { feedLag } from "./feed-lag.ts";
import type { AuditFilter } from "./audit-query.ts";
import { deriveKeyId, generateSigningKeyPair } from "../shared/wire/signing.ts";
import { LOCAL_TOPIC_PLAN, coreTopicSpecs, feedTopicSpec, topicNames } from "../shared/topics.ts";
import { recordsAssertedOnlyByKey } from "../dedup/key-report.ts";
import { kafkaIntakeSink, pgSubmissionLedger } from "../ingest/adapters.ts";
import { AvroCodec } from "../shared/wire/codec.ts";
import { matches, readRejections, redrive } from "./redrive.ts";
import type { RedriveFilter } from "./redrive.ts";
import { listAgencies, listPartners, registerAgency, registerPartner } from "./registry.ts";
import { listPolicies, resumePolicy, setPolicy, suspendPolicy } from "../distribution/policy-store.ts";
import { newlyGrantedWithheld } from "../distribution/policy.ts";
import type { CategoryScheme, Delivery, ExtraField, PartnerPolicy } from "../distribution/policy.ts";
import type { GradingStatus, HashAlg, UkCategory } from "../shared/wire/records.ts";
import { LICENSED_ALGORITHMS, UNLICENSED_ALGORITHMS } from "../shared/wire/hash-algorithms.ts";
import { fileURLToPath } from "node:url";
import type { AgencyKind } from "./registry.ts";
import type { AuditEvent } from "../shared/wire/records.ts";
import {
  AuditNotWrittenError,
  AuditQueuedError,
  accessApplied,
  accessRevoked,
  agencyRegistered,
  defaultActor,
  dlqRedriven,
  keyRegistered,
  keyRevoked,
  partnerRegistered,
  policyResumed,
  policySet,
  policySuspended,
  writeAuditEvent,
} from "./audit.ts";

async function dependentRecords(db: Queryable, keyId: string) {
  // The dedup tables may not exist yet on a hub that has not run dedup.
  const { rows } = await db.query<{ t: string | null }>("SELECT to_regclass('sightings')::text AS t");
  return rows[0]?.t ? recordsAssertedOnlyByKey(db, keyId) : [];
}

/** The operator's Kafka client: the hub admin principal (KAFKA_SASL_*, or the local stack's hashrelay-admin). */
function adminKafka(retries?: number) {
  return createKafka({
    ...kafkaConnection(loadConfig("hashrelay-admin", kafkaConfigShape, effectiveEnv(process.env, ADMIN_PRINCIPAL))),
    clientId: "hashrelay-admin",
    ...(retries !== undefined ? { retries } : {}),
  });
}

/** Options of a command that changes the hub: who does it, and which namespace's audit.v1 records it. */
interface AuditOptions {
  actor: string;
  namespace: string;
}

function audited(cmd: Command, options: { namespace?: boolean } = { namespace: true }): Command {
  cmd.option("--actor <name>", "the operator recorded in audit.v1", defaultActor());
  if (options.namespace) cmd.option("--namespace <ns>", "topic namespace prefix (TOPIC_NAMESPACE); audit.v1 is written there", process.env["TOPIC_NAMESPACE"] ?? "");
  return cmd;
}

/** Checks the audit options before anything changes, so a bad --namespace or --actor changes nothing. */
function auditTarget(o: AuditOptions): { actor: string; topics: ReturnType<typeof topicNames> } {
  if (!o.actor.trim()) throw new Error("--actor must not be empty");
  return { actor: o.actor.trim(), topics: topicNames(o.namespace) };
}

type Topics = ReturnType<typeof topicNames>;

/**
 * Makes a hub change and queues its audit event in one transaction: either both are stored or
 * neither. Call sendAudit afterwards to deliver it.
 */
async function commitAudited<T>(topics: Topics, change: (db: PoolClient) => Promise<T>, event: (result: T) => AuditEvent): Promise<{ result: T; event: AuditEvent }> {
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
async function sendAudit(topics: Topics, event: AuditEvent): Promise<void> {
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
async function recordAudit(topics: Topics, event: AuditEvent): Promise<void> {
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

const DISTRIBUTION_MIGRATIONS_DIR = fileURLToPath(new URL("../distribution/migrations/", import.meta.url));
const dbConfig = () => loadConfig("hashrelay-admin", { DATABASE_URL: commonConfigShape.DATABASE_URL });

async function withDb<T>(work: (pool: ReturnType<typeof createPool>) => Promise<T>): Promise<T> {
  const pool = createPool(dbConfig().DATABASE_URL, { max: 2, applicationName: "hashrelay-admin" });
  try {
    await migrate(pool, [{ namespace: "shared", dir: SHARED_MIGRATIONS }, ADMIN_MIGRATIONS]);
    return await work(pool);
  } finally {
    await pool.end();
  }
}

function parseDate(value: string): Date {
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) throw new Error(`not a date: ${value}`);
  return d;
}

function readPublicKey(value: string): Buffer {
  // Accept the base64 printed by `keys generate`, or a path to a file holding it.
  let text = value;
  try {
    text = readFileSync(value, "utf8").trim();
  } catch {
    /* not a file: treat as base64 */
  }
  const raw = Buffer.from(text, "base64");
  if (raw.length !== 32) throw new Error("public key must be 32 bytes of Ed25519, base64 encoded");
  return raw;
}

export function buildCli(): Command {
  const program = new Command("hashrelay").description("hashrelay hub administration").showHelpAfterError();

  program
    .command("migrate")
    .description("apply the hub database migrations")
    .action(async () => {
      const pool = createPool(dbConfig().DATABASE_URL, { max: 1, applicationName: "hashrelay-admin" });
      const applied = await migrate(pool, [{ namespace: "shared", dir: SHARED_MIGRATIONS }, ADMIN_MIGRATIONS]).finally(() => pool.end());
      console.log(applied.length ? `applied ${applied.join(", ")}` : "database is up to date");
    });

  program
    .command("topics")
    .description("create or update the core topics and the feed topic of each given partner")
    .option("--partner <id...>", "partner ids whose feed topics to provision", [])
    .option("--partitions <n>", "partitions of high-volume topics", String(LOCAL_TOPIC_PLAN.partitions))
    .option("--replication <n>", "replication factor", String(LOCAL_TOPIC_PLAN.replicationFactor))
    .option("--min-isr <n>", "min.insync.replicas", String(LOCAL_TOPIC_PLAN.minInsyncReplicas))
    .option("--namespace <ns>", "topic namespace prefix (TOPIC_NAMESPACE)", process.env["TOPIC_NAMESPACE"] ?? "")
    .action(async (o: { partner: string[]; partitions: string; replication: string; minIsr: string; namespace: string }) => {
      const plan = { partitions: Number(o.partitions), replicationFactor: Number(o.replication), minInsyncReplicas: Number(o.minIsr) };
      const admin = adminKafka().admin();
      await admin.connect();
      try {
        const names = topicNames(o.namespace);
        const result = await provisionTopics(admin, [...coreTopicSpecs(plan, names), ...o.partner.map((p) => feedTopicSpec(p, plan, names))]);
        console.log(`created: ${result.created.join(", ") || "none"}; updated: ${result.updated.join(", ") || "none"}`);
      } finally {
        await admin.disconnect();
      }
    });

  const agencies = program.command("agencies").description("contributing agencies");
  audited(
    agencies
      .command("register")
      .requiredOption("--id <id>", "agency id, e.g. met-police")
      .requiredOption("--name <name>")
      .addOption(new Option("--kind <kind>").choices(["force", "nca", "other"]).default("force"))
      .option("--grading-authority", "this agency's grade is authoritative", false),
  ).action(async (o: { id: string; name: string; kind: AgencyKind; gradingAuthority: boolean } & AuditOptions) => {
    const { actor, topics } = auditTarget(o);
    const agency = { agencyId: o.id, name: o.name, kind: o.kind, gradingAuthority: o.gradingAuthority };
    const { event } = await commitAudited(topics, (db) => registerAgency(db, agency), () => agencyRegistered(actor, agency));
    console.log(`agency ${o.id} registered`);
    await sendAudit(topics, event);
  });
  agencies.command("list").action(async () => {
    for (const a of await withDb(listAgencies)) {
      console.log(`${a.agencyId}\t${a.kind}\t${a.gradingAuthority ? "authority" : ""}\t${a.name}`);
    }
  });

  const partners = program.command("partners").description("feed partners");
  audited(partners.command("register").requiredOption("--id <id>", "partner id, e.g. hotline-uk").requiredOption("--name <name>")).action(
    async (o: { id: string; name: string } & AuditOptions) => {
      const { actor, topics } = auditTarget(o);
      const partner = { partnerId: o.id, name: o.name };
      const { event } = await commitAudited(topics, (db) => registerPartner(db, partner), () => partnerRegistered(actor, partner));
      console.log(`partner ${o.id} registered`);
      await sendAudit(topics, event);
    },
  );
  partners.command("list").action(async () => {
    for (const p of await withDb(listPartners)) console.log(`${p.partnerId}\t${p.name}`);
  });
  partners
    .command("lag")
    .description("how far each Kafka partner's sink is behind its feed; exit 2 if one lost records to retention")
    .option("--namespace <ns>", "topic namespace prefix (TOPIC_NAMESPACE)", process.env["TOPIC_NAMESPACE"] ?? "")
    .action(async (o: { namespace: string }) => {
      await withDb((db) => migrate(db, [{ namespace: "distribution", dir: DISTRIBUTION_MIGRATIONS_DIR }]));
      const kafkaPartners = (await withDb(listPolicies)).filter((l) => l.policy.delivery !== "s3");
      const names = topicNames(o.namespace);
      const admin = adminKafka(3).admin();
      await admin.connect();
      let lost = 0;
      try {
        for (const { policy, suspension } of kafkaPartners) {
          const topic = names.feed(policy.partnerId);
          const group = consumerGroups(o.namespace).sink(policy.partnerId);
          const ends = await admin.fetchTopicOffsets(topic);
          const [offsets] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
          const report = feedLag(ends, new Map((offsets?.partitions ?? []).map((p) => [p.partition, p.offset])));
          if (report.lost) lost++;
          const parts = report.partitions.map((p) => `p${p.partition} ${p.state}${p.lag ? ` ${p.lag}` : ""}`).join(", ");
          console.log(`${policy.partnerId}\t${report.lost ? "LOST" : report.lag ? "behind" : "ok"}\tlag ${report.lag}\t${parts}${suspension ? "\t(suspended)" : ""}`);
        }
      } finally {
        await admin.disconnect();
      }
      if (lost) {
        console.error(`${lost} partner(s) fell behind the feed's retention: records they never read, REMOVE tombstones included, are gone; re-bootstrap them from a snapshot`);
        process.exitCode = 2;
      }
    });

  const access = program.command("access").description("Kafka ACLs: which principal may read or write which topic");
  audited(
    access
      .command("apply")
      .description("grant the hub services, every registered partner (and any named) and the named direct-producing agencies their ACLs")
      .option("--partner <id...>", "partners besides the registered ones", [])
      .option("--agency <id...>", "agencies that produce submissions straight to Kafka", [])
      .option("--dry-run", "print the grants without applying them (no audit event)", false),
  ).action(async (o: { partner: string[]; agency: string[]; dryRun: boolean } & AuditOptions) => {
    const { actor, topics } = auditTarget(o);
    const registered = await withDb(listPartners);
    const partnerIds = [...new Set([...registered.map((p) => p.partnerId), ...o.partner])];
    const grants = accessPlan({ names: topicNames(o.namespace), namespace: o.namespace, partners: partnerIds, agencies: o.agency });
    for (const g of grants) console.log(`${g.principal}\t${g.operation}\t${g.resource} ${g.pattern === "prefixed" ? `${g.name}*` : g.name}`);
    if (o.dryRun) return;
    const admin = adminKafka().admin();
    await admin.connect();
    let applied: number;
    try {
      applied = await applyAccessPlan(admin, grants);
      console.log(`${applied} grants applied`);
    } finally {
      await admin.disconnect();
    }
    await recordAudit(
      topics,
      accessApplied(actor, { namespace: o.namespace, principals: grants.map((g) => g.principal), grants: applied, partners: partnerIds, agencies: o.agency }),
    );
  });
  audited(
    access
      .command("revoke")
      .description("withdraw every ACL of a partner or agency principal (offboarding, leaked credentials)")
      .option("--partner <id>")
      .option("--agency <id>"),
  ).action(async (o: { partner?: string; agency?: string } & AuditOptions) => {
    const { actor, topics } = auditTarget(o);
    if (Boolean(o.partner) === Boolean(o.agency)) throw new Error("give exactly one of --partner or --agency");
    const principal = o.partner ? partnerPrincipal(o.partner) : agencyPrincipal(o.agency as string);
    const admin = adminKafka().admin();
    await admin.connect();
    let removed: number;
    try {
      removed = await revokePrincipalAccess(admin, principal);
      console.log(`${removed} ACLs of ${principal} removed`);
    } finally {
      await admin.disconnect();
    }
    await recordAudit(topics, accessRevoked(actor, principal, removed));
  });

  const policies = program.command("policies").description("partner feed policies");
  const list = (v: string) => v.split(",").map((x) => x.trim()).filter(Boolean);
  audited(
    policies
      .command("set")
      .description("create or replace a partner's policy (distribution re-evaluates its feed)")
      .requiredOption("--partner <id>")
      .option("--categories <list>", "UK categories the partner receives", "A,B,C")
      .addOption(new Option("--min-status <status>", "minimum grading status").choices(["disputed", "indicative", "confirmed"]).default("confirmed"))
      .option("--algorithms <list>", `hash algorithms (${LICENSED_ALGORITHMS.join(", ")} is licensed)`, UNLICENSED_ALGORITHMS.join(","))
      .addOption(new Option("--scheme <scheme>", "category scheme").choices(["uk", "ics", "vics"]).default("uk"))
      .option("--extra <list>", "extra fields granted (newly granting a law-enforcement-only one, or agencies, needs --approved-by)", "")
      .option("--approved-by <name>", "the second person approving newly granted law-enforcement-only extras (not the --actor)")
      .addOption(new Option("--delivery <delivery>").choices(["kafka", "s3", "both"]).default("kafka"))
      .option("--partitions <n>", "feed partitions (fixed once the feed exists)", "3"),
  ).action(
    async (
      o: { partner: string; categories: string; minStatus: GradingStatus; algorithms: string; scheme: CategoryScheme; extra: string; delivery: Delivery; partitions: string; approvedBy?: string } & AuditOptions,
    ) => {
      const { actor, topics } = auditTarget(o);
      const approvedBy = o.approvedBy?.trim();
      await withDb((db) => migrate(db, [{ namespace: "distribution", dir: DISTRIBUTION_MIGRATIONS_DIR }]));
      const { result: stored, event } = await commitAudited(
        topics,
        async (db) => {
          const current = (await listPolicies(db)).find((l) => l.policy.partnerId === o.partner)?.policy;
          const needApproval = newlyGrantedWithheld(current, list(o.extra) as ExtraField[]);
          // Two people, both named in audit.v1: law-enforcement-only data leaving the hub is not one operator's call.
          if (needApproval.length && (!approvedBy || approvedBy === actor)) {
            throw new ValidationError(
              "INVALID_FIELD",
              `granting ${needApproval.join(", ")} to ${o.partner} needs --approved-by <a second person> other than the actor (${actor}); nothing was changed`,
            );
          }
          await setPolicy(db, {
            partnerId: o.partner,
            categories: list(o.categories) as UkCategory[],
            minGradingStatus: o.minStatus,
            algorithms: list(o.algorithms) as HashAlg[],
            scheme: o.scheme,
            extraFields: list(o.extra) as ExtraField[],
            delivery: o.delivery,
            feedPartitions: Number(o.partitions),
          });
          // As stored: a later `set` keeps the first feed partition count.
          return (await listPolicies(db)).find((l) => l.policy.partnerId === o.partner)?.policy as PartnerPolicy;
        },
        (policy) => policySet(actor, policy, approvedBy),
      );
      console.log(`policy of ${o.partner} is now version ${stored.version}`);
      await sendAudit(topics, event);
    },
  );
  audited(
    policies
      .command("suspend")
      .description("stop a partner's feed (Kafka and S3) without forgetting what it holds; resume sends what changed meanwhile")
      .requiredOption("--partner <id>")
      .requiredOption("--reason <text>", "why, for the audit trail"),
  ).action(async (o: { partner: string; reason: string } & AuditOptions) => {
    const { actor, topics } = auditTarget(o);
    await withDb((db) => migrate(db, [{ namespace: "distribution", dir: DISTRIBUTION_MIGRATIONS_DIR }]));
    const { result: version, event } = await commitAudited(
      topics,
      (db) => suspendPolicy(db, o.partner, o.reason),
      (v) => policySuspended(actor, o.partner, v, o.reason),
    );
    console.log(`policy of ${o.partner} suspended (version ${version}); distribution stops its feed at its next policy refresh`);
    console.log(`Kafka access is unchanged: for offboarding also run \`hashrelay access revoke --partner ${o.partner}\``);
    await sendAudit(topics, event);
  });
  audited(policies.command("resume").description("let a suspended partner's feed flow again").requiredOption("--partner <id>")).action(
    async (o: { partner: string } & AuditOptions) => {
      const { actor, topics } = auditTarget(o);
      await withDb((db) => migrate(db, [{ namespace: "distribution", dir: DISTRIBUTION_MIGRATIONS_DIR }]));
      const { result: version, event } = await commitAudited(
        topics,
        (db) => resumePolicy(db, o.partner),
        (v) => policyResumed(actor, o.partner, v),
      );
      console.log(`policy of ${o.partner} resumed (version ${version}); distribution sends what changed while it was suspended`);
      await sendAudit(topics, event);
    },
  );
  policies.command("list").action(async () => {
    const all = await withDb(async (db) => {
      await migrate(db, [{ namespace: "distribution", dir: DISTRIBUTION_MIGRATIONS_DIR }]);
      return listPolicies(db);
    });
    for (const { policy: p, suspension } of all) {
      const state = suspension ? `SUSPENDED since ${suspension.at.toISOString()}: ${suspension.reason}` : "active";
      console.log(`${p.partnerId}	v${p.version}	${p.scheme}	${p.categories.join(",")}	>=${p.minGradingStatus}	${p.algorithms.join(",")}	${p.delivery}	extra=${p.extraFields.join(",") || "-"}	${state}`);
    }
  });

  const keys = program.command("keys").description("Ed25519 signing keys");
  keys
    .command("generate")
    .description("make a key pair; writes the private key (mode 0600) and prints the key id and public key")
    .requiredOption("--owner <id>", "agency id, or 'hub'")
    .requiredOption("--out <dir>", "directory for the private key file")
    .action((o: { owner: string; out: string }) => {
      const pair = generateSigningKeyPair();
      const keyId = deriveKeyId(o.owner, pair.publicKey);
      mkdirSync(o.out, { recursive: true, mode: 0o700 });
      const file = join(o.out, `${keyId.replace(/[^a-zA-Z0-9-]/g, "_")}.pem`);
      writeFileSync(file, pair.privateKeyPem, { mode: 0o600 });
      writeFileSync(`${file}.pub`, `${pair.publicKey.toString("base64")}\n`);
      console.log(JSON.stringify({ keyId, publicKey: pair.publicKey.toString("base64"), privateKeyFile: file }));
    });
  audited(
    keys
      .command("register")
      .requiredOption("--key-id <id>")
      .addOption(new Option("--owner-kind <kind>").choices(["agency", "hub"]).default("agency"))
      .requiredOption("--owner <id>")
      .requiredOption("--public-key <base64|file>")
      .option("--valid-from <iso>", "start of validity", new Date().toISOString())
      .option("--valid-until <iso>", "end of validity (open-ended if omitted)"),
  ).action(async (o: { keyId: string; ownerKind: KeyOwnerKind; owner: string; publicKey: string; validFrom: string; validUntil?: string } & AuditOptions) => {
    const { actor, topics } = auditTarget(o);
    const key = {
      keyId: o.keyId,
      ownerKind: o.ownerKind,
      ownerId: o.owner,
      publicKey: readPublicKey(o.publicKey),
      validFrom: parseDate(o.validFrom),
      validUntil: o.validUntil ? parseDate(o.validUntil) : null,
    };
    const { event } = await commitAudited(topics, (db) => new PgKeyRegistry(db).registerKey(key), () => keyRegistered(actor, key));
    console.log(`key ${o.keyId} registered for ${o.ownerKind} ${o.owner}`);
    await sendAudit(topics, event);
  });
  audited(keys.command("revoke").requiredOption("--key-id <id>").requiredOption("--reason <text>")).action(
    async (o: { keyId: string; reason: string } & AuditOptions) => {
      const { actor, topics } = auditTarget(o);
      const { result, event } = await commitAudited(
        topics,
        async (db) => {
          const registry = new PgKeyRegistry(db, 0);
          await registry.revokeKey(o.keyId, o.reason);
          return { dependent: await dependentRecords(db, o.keyId), key: await registry.findKey(o.keyId) };
        },
        ({ dependent, key }) => keyRevoked(actor, o.keyId, o.reason, key, dependent.length),
      );
      console.log(`key ${o.keyId} revoked; later submissions signed with it are rejected (KEY_REVOKED)`);
      console.log(`${result.dependent.length} live records were asserted only with this key (see \`keys report --key-id ${o.keyId}\`)`);
      await sendAudit(topics, event);
    },
  );
  keys
    .command("report")
    .description("live records asserted only by submissions signed with this key")
    .requiredOption("--key-id <id>")
    .action(async (o: { keyId: string }) => {
      const dependent = await withDb((db) => dependentRecords(db, o.keyId));
      for (const r of dependent) console.log(`${r.recordId}\t${r.hashes} hashes\t${r.agencies.join(",")}`);
      console.log(`${dependent.length} records`);
    });
  keys
    .command("list")
    .option("--owner <id>")
    .action(async (o: { owner?: string }) => {
      for (const k of await withDb((db) => new PgKeyRegistry(db, 0).listKeys(undefined, o.owner))) {
        const state = k.revokedAt ? `revoked ${k.revokedAt.toISOString()}` : k.validUntil ? `until ${k.validUntil.toISOString()}` : "open";
        console.log(`${k.keyId}\t${k.ownerKind}\t${k.ownerId}\tfrom ${k.validFrom.toISOString()}\t${state}`);
      }
    });

  const dlq = program.command("dlq").description("the dead-letter topic (hashes.rejected.v1)");
  const dlqFilter = (cmd: Command) =>
    cmd
      .option("--reason <code>", "only this reason code")
      .option("--service <name>", "only rejections made by this service (ingest, dedup, distribution)")
      .option("--agency <id>", "only this agency's rejections")
      .option("--since <iso>", "only rejections at or after this time")
      .option("--namespace <ns>", "topic namespace prefix (TOPIC_NAMESPACE)", process.env["TOPIC_NAMESPACE"] ?? "");
  type DlqOptions = { reason?: string; service?: string; agency?: string; since?: string; namespace: string };
  const filterOf = (o: DlqOptions): RedriveFilter => ({
    ...(o.reason ? { reason: o.reason } : {}),
    ...(o.service ? { service: o.service } : {}),
    ...(o.agency ? { agencyId: o.agency } : {}),
    ...(o.since ? { since: parseDate(o.since).getTime() } : {}),
  });
  const kafkaOf = adminKafka;
  dlqFilter(dlq.command("list").description("rejections with their reason, source and time")).action(async (o: DlqOptions) => {
    const codec = new AvroCodec();
    const all = (await readRejections(kafkaOf(), codec, topicNames(o.namespace).rejected)).filter((r) => matches(r, filterOf(o)));
    for (const r of all) {
      console.log(`${new Date(r.rejectedAt).toISOString()}\t${r.service}\t${r.reason}\t${r.agencyId ?? "-"}\t${r.submissionId ?? "-"}\t${r.detail.slice(0, 120)}`);
    }
    console.log(`${all.length} rejections`);
  });
  audited(dlqFilter(dlq.command("redrive").description("send matching rejections round again, once their cause is fixed")), { namespace: false }).action(async (o: DlqOptions & AuditOptions) => {
    const { actor } = auditTarget(o);
    const codec = new AvroCodec();
    const kafka = kafkaOf();
    const topics = topicNames(o.namespace);
    const report = await withDb(async (db) => {
      await migrate(db, [{ namespace: "ingest", dir: fileURLToPath(new URL("../ingest/migrations/", import.meta.url)) }]);
      const producer = createDurableProducer(kafka);
      await producer.connect();
      try {
        return await redrive(
          { kafka, codec, topics, intake: { codec, keys: new PgKeyRegistry(db, 0), ledger: pgSubmissionLedger(db), sink: kafkaIntakeSink(producer, codec, topics) } },
          filterOf(o),
        );
      } finally {
        await producer.disconnect();
      }
    });
    console.log(
      `matched ${report.matched}: ${report.republished} sent back to dedup; ${report.readmitted.accepted} re-admitted by ingest (${report.readmitted.duplicates} duplicates, ${report.readmitted.rejected} refused again); ${report.skipped} not re-drivable`,
    );
    await recordAudit(topics, dlqRedriven(actor, topics.rejected, filterOf(o), report));
  });

  const auditCommands = program.command("audit").description("audit.v1: read it back; send the admin CLI's queued events");
  auditCommands
    .command("list")
    .description("events on audit.v1, oldest first, one per line (time, service, actor, action, subject, details)")
    .option("--namespace <ns>", "topic namespace prefix (TOPIC_NAMESPACE)", process.env["TOPIC_NAMESPACE"] ?? "")
    .option("--subject <id>", "the event's subject: a record id, partner id, key id, ...")
    .option("--action <action>", "an action, or a prefix ending in '.' (feed., key., policy.)")
    .option("--partner <id>", "a partner's policy and access events and every feed record it was sent")
    .option("--actor <name>", "events by this operator, agency or service principal")
    .option("--service <name>", "ingest, dedup, distribution or admin")
    .option("--since <iso>", "events at or after this time")
    .option("--json", "one JSON object per line instead", false)
    .action(async (o: { namespace: string; subject?: string; action?: string; partner?: string; actor?: string; service?: string; since?: string; json: boolean }) => {
      const codec = new AvroCodec();
      const filter: AuditFilter = {
        ...(o.subject ? { subject: o.subject } : {}),
        ...(o.action ? { action: o.action } : {}),
        ...(o.partner ? { partner: o.partner } : {}),
        ...(o.actor ? { actor: o.actor } : {}),
        ...(o.service ? { service: o.service } : {}),
        ...(o.since ? { since: parseDate(o.since).getTime() } : {}),
      };
      const events = (await readTopicToEnd(adminKafka(3), topicNames(o.namespace).audit, "audit-list"))
        .map((value) => codec.decode("AuditEvent", value).value)
        .filter((e) => matchesAudit(e, filter))
        .sort((a, b) => a.at - b.at);
      for (const e of events) console.log(o.json ? JSON.stringify(e) : formatAuditEvent(e));
      console.error(`${events.length} event(s)`);
    });
  auditCommands
    .command("flush")
    .description("send the audit events queued in the hub database while Kafka was unreachable")
    .action(async () => {
      const pending = await withDb(pendingAuditEvents);
      if (pending === 0) {
        console.log("no audit events queued");
        return;
      }
      const sent = await withDb((pool) => flushAuditOutbox(pool, adminKafka(3)));
      console.log(`${sent} queued audit event(s) written`);
    });

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
