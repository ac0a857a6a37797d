/**
 * `hashrelay agencies`: registers and lists contributing agencies. Registration and its audit event
 * are stored in one transaction.
 */
import { Option } from "commander";
import type { Command } from "commander";
import { agencyRegistered } from "../audit.ts";
import { listAgencies, registerAgency } from "../registry.ts";
import type { AgencyKind } from "../registry.ts";
import { auditTarget, audited, commitAudited, sendAudit, withDb } from "../cli.ts";
import type { AuditOptions } from "../cli.ts";

export function addAgencyCommands(program: Command): void {
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
    const { event } = await commitAudited(
      topics,
      (db) => registerAgency(db, agency),
      () => agencyRegistered(actor, agency),
    );
    console.log(`agency ${o.id} registered`);
    await sendAudit(topics, event);
  });
  agencies.command("list").action(async () => {
    for (const a of await withDb(listAgencies)) {
      console.log(`${a.agencyId}\t${a.kind}\t${a.gradingAuthority ? "authority" : ""}\t${a.name}`);
    }
  });
}
