/**
 * `hashrelay access`: grants and withdraws Kafka ACLs. The ACLs live on the broker, not in the hub
 * database, so their audit event is recorded after the change (recordAudit in cli.ts).
 */
import type { Command } from "commander";
import { accessPlan, agencyPrincipal, applyAccessPlan, partnerPrincipal, revokePrincipalAccess } from "../../shared/kafka-access.ts";
import { topicNames } from "../../shared/topics.ts";
import { accessApplied, accessRevoked } from "../audit.ts";
import { listPartners } from "../registry.ts";
import { adminKafka, auditTarget, audited, recordAudit, withDb } from "../cli.ts";
import type { AuditOptions } from "../cli.ts";

export function addAccessCommands(program: Command): void {
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
    for (const g of grants)
      console.log(`${g.principal}\t${g.operation}\t${g.resource} ${g.pattern === "prefixed" ? `${g.name}*` : g.name}`);
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
      accessApplied(actor, {
        namespace: o.namespace,
        principals: grants.map((g) => g.principal),
        grants: applied,
        partners: partnerIds,
        agencies: o.agency,
      }),
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
}
