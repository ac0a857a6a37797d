/**
 * `hashrelay policies`: sets, suspends, resumes and lists partner feed policies. Each change and its
 * audit event are stored in one transaction; newly granting a law-enforcement-only field needs a
 * second, named person (--approved-by) besides the actor.
 */
import { Option } from "commander";
import type { Command } from "commander";
import { listPolicies, resumePolicy, setPolicy, suspendPolicy } from "../../distribution/policy-store.ts";
import type { PolicyListing } from "../../distribution/policy-store.ts";
import { newlyGrantedWithheld } from "../../distribution/policy.ts";
import type { CategoryScheme, Delivery, ExtraField, PartnerPolicy } from "../../distribution/policy.ts";
import { ValidationError } from "../../shared/errors.ts";
import { migrate } from "../../shared/postgres.ts";
import type { Queryable } from "../../shared/postgres.ts";
import type { GradingStatus, HashAlg, UkCategory } from "../../shared/wire/records.ts";
import { LICENSED_ALGORITHMS, UNLICENSED_ALGORITHMS } from "../../shared/wire/hash-algorithms.ts";
import { policyResumed, policySet, policySuspended } from "../audit.ts";
import { DISTRIBUTION_MIGRATIONS_DIR, auditTarget, audited, commitAudited, sendAudit, withDb } from "../cli.ts";
import type { AuditOptions } from "../cli.ts";

interface SetOptions extends AuditOptions {
  partner: string;
  categories: string;
  minStatus: GradingStatus;
  algorithms: string;
  scheme: CategoryScheme;
  extra: string;
  delivery: Delivery;
  partitions: string;
  approvedBy?: string;
  withholdUnderReview?: boolean;
}

function splitList(v: string): string[] {
  return v
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean);
}

async function migrateDistribution(): Promise<void> {
  await withDb((db) => migrate(db, [{ namespace: "distribution", dir: DISTRIBUTION_MIGRATIONS_DIR }]));
}

async function storedPolicy(db: Queryable, partnerId: string): Promise<PartnerPolicy | undefined> {
  return (await listPolicies(db)).find((l) => l.policy.partnerId === partnerId)?.policy;
}

/** Refuses a policy that newly grants law-enforcement-only extras without a second, named approver. */
function requireSecondApprover(current: PartnerPolicy | undefined, o: SetOptions, actor: string, approvedBy: string | undefined): void {
  const needApproval = newlyGrantedWithheld(current, splitList(o.extra) as ExtraField[]);
  // Two people, both named in audit.v1: law-enforcement-only data leaving the hub is not one operator's call.
  if (needApproval.length && (!approvedBy || approvedBy === actor)) {
    throw new ValidationError(
      "INVALID_FIELD",
      `granting ${needApproval.join(", ")} to ${o.partner} needs --approved-by <a second person> ` +
        `other than the actor (${actor}); nothing was changed`,
    );
  }
}

function policyFromOptions(o: SetOptions): Omit<PartnerPolicy, "version"> {
  return {
    partnerId: o.partner,
    categories: splitList(o.categories) as UkCategory[],
    minGradingStatus: o.minStatus,
    algorithms: splitList(o.algorithms) as HashAlg[],
    scheme: o.scheme,
    extraFields: splitList(o.extra) as ExtraField[],
    delivery: o.delivery,
    feedPartitions: Number(o.partitions),
    withholdUnderReview: o.withholdUnderReview === true,
  };
}

function formatPolicy({ policy: p, suspension }: PolicyListing): string {
  const state = suspension ? `SUSPENDED since ${suspension.at.toISOString()}: ${suspension.reason}` : "active";
  return (
    `${p.partnerId}\tv${p.version}\t${p.scheme}\t${p.categories.join(",")}\t>=${p.minGradingStatus}\t` +
    `${p.algorithms.join(",")}\t${p.delivery}\textra=${p.extraFields.join(",") || "-"}\t` +
    `${p.withholdUnderReview ? "withholds-under-review" : "keeps-under-review"}\t${state}`
  );
}

function addSetCommand(policies: Command): void {
  audited(
    policies
      .command("set")
      .description("create or replace a partner's policy (distribution re-evaluates its feed)")
      .requiredOption("--partner <id>")
      .option("--categories <list>", "UK categories the partner receives", "A,B,C")
      .addOption(
        new Option("--min-status <status>", "minimum grading status").choices(["disputed", "indicative", "confirmed"]).default("confirmed"),
      )
      .option("--algorithms <list>", `hash algorithms (${LICENSED_ALGORITHMS.join(", ")} is licensed)`, UNLICENSED_ALGORITHMS.join(","))
      .addOption(new Option("--scheme <scheme>", "category scheme").choices(["uk", "ics", "vics"]).default("uk"))
      .option("--extra <list>", "extra fields granted (newly granting a law-enforcement-only one, or agencies, needs --approved-by)", "")
      .option("--approved-by <name>", "the second person approving newly granted law-enforcement-only extras (not the --actor)")
      .addOption(new Option("--delivery <delivery>").choices(["kafka", "s3", "both"]).default("kafka"))
      .option("--partitions <n>", "feed partitions (fixed once the feed exists)", "3")
      .option("--withhold-under-review", "stop sending a record while a partner's false-positive report about it is under review", false),
  ).action(async (o: SetOptions) => {
    const { actor, topics } = auditTarget(o);
    const approvedBy = o.approvedBy?.trim();
    await migrateDistribution();
    const { result: stored, event } = await commitAudited(
      topics,
      async (db) => {
        requireSecondApprover(await storedPolicy(db, o.partner), o, actor, approvedBy);
        await setPolicy(db, policyFromOptions(o));
        // As stored: a later `set` keeps the first feed partition count.
        return (await storedPolicy(db, o.partner)) as PartnerPolicy;
      },
      (policy) => policySet(actor, policy, approvedBy),
    );
    console.log(`policy of ${o.partner} is now version ${stored.version}`);
    await sendAudit(topics, event);
  });
}

function addSuspendCommand(policies: Command): void {
  audited(
    policies
      .command("suspend")
      .description("stop a partner's feed (Kafka and S3) without forgetting what it holds; resume sends what changed meanwhile")
      .requiredOption("--partner <id>")
      .requiredOption("--reason <text>", "why, for the audit trail"),
  ).action(async (o: { partner: string; reason: string } & AuditOptions) => {
    const { actor, topics } = auditTarget(o);
    await migrateDistribution();
    const { result: version, event } = await commitAudited(
      topics,
      (db) => suspendPolicy(db, o.partner, o.reason),
      (v) => policySuspended(actor, o.partner, v, o.reason),
    );
    console.log(`policy of ${o.partner} suspended (version ${version}); distribution stops its feed at its next policy refresh`);
    console.log(`Kafka access is unchanged: for offboarding also run \`hashrelay access revoke --partner ${o.partner}\``);
    await sendAudit(topics, event);
  });
}

function addResumeCommand(policies: Command): void {
  audited(policies.command("resume").description("let a suspended partner's feed flow again").requiredOption("--partner <id>")).action(
    async (o: { partner: string } & AuditOptions) => {
      const { actor, topics } = auditTarget(o);
      await migrateDistribution();
      const { result: version, event } = await commitAudited(
        topics,
        (db) => resumePolicy(db, o.partner),
        (v) => policyResumed(actor, o.partner, v),
      );
      console.log(`policy of ${o.partner} resumed (version ${version}); distribution sends what changed while it was suspended`);
      await sendAudit(topics, event);
    },
  );
}

function addListCommand(policies: Command): void {
  policies.command("list").action(async () => {
    const all = await withDb(async (db) => {
      await migrate(db, [{ namespace: "distribution", dir: DISTRIBUTION_MIGRATIONS_DIR }]);
      return listPolicies(db);
    });
    for (const listing of all) console.log(formatPolicy(listing));
  });
}

export function addPolicyCommands(program: Command): void {
  const policies = program.command("policies").description("partner feed policies");
  addSetCommand(policies);
  addSuspendCommand(policies);
  addResumeCommand(policies);
  addListCommand(policies);
}
