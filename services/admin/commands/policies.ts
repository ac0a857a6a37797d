/**
 * `hashrelay policies`: sets, suspends, resumes and lists partner feed policies. Each change and its
 * audit event are stored in one transaction; newly granting a law-enforcement-only field needs a
 * second, named person (--approved-by) besides the actor.
 */
import { Option } from "commander";
import type { Command } from "commander";
import { listPolicies, resumePolicy, setPolicy, suspendPolicy } from "../../distribution/policy-store.ts";
import { newlyGrantedWithheld } from "../../distribution/policy.ts";
import type { CategoryScheme, Delivery, ExtraField, PartnerPolicy } from "../../distribution/policy.ts";
import { ValidationError } from "../../shared/errors.ts";
import { migrate } from "../../shared/postgres.ts";
import type { GradingStatus, HashAlg, UkCategory } from "../../shared/wire/records.ts";
import { LICENSED_ALGORITHMS, UNLICENSED_ALGORITHMS } from "../../shared/wire/hash-algorithms.ts";
import { policyResumed, policySet, policySuspended } from "../audit.ts";
import { DISTRIBUTION_MIGRATIONS_DIR, auditTarget, audited, commitAudited, sendAudit, withDb } from "../cli.ts";
import type { AuditOptions } from "../cli.ts";

export function addPolicyCommands(program: Command): void {
  const policies = program.command("policies").description("partner feed policies");
  const list = (v: string) =>
    v
      .split(",")
      .map((x) => x.trim())
      .filter(Boolean);
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
      .option("--partitions <n>", "feed partitions (fixed once the feed exists)", "3"),
  ).action(
    async (
      o: {
        partner: string;
        categories: string;
        minStatus: GradingStatus;
        algorithms: string;
        scheme: CategoryScheme;
        extra: string;
        delivery: Delivery;
        partitions: string;
        approvedBy?: string;
      } & AuditOptions,
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
              `granting ${needApproval.join(", ")} to ${o.partner} needs --approved-by <a second person> ` +
                `other than the actor (${actor}); nothing was changed`,
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
      console.log(
        `${p.partnerId}\tv${p.version}\t${p.scheme}\t${p.categories.join(",")}\t>=${p.minGradingStatus}\t` +
          `${p.algorithms.join(",")}\t${p.delivery}\textra=${p.extraFields.join(",") || "-"}\t${state}`,
      );
    }
  });
}
