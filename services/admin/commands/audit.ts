/**
 * `hashrelay audit`: reads audit.v1 back with filters, and sends the audit events the admin CLI
 * queued in the hub database while Kafka was unreachable.
 */
import type { Command } from "commander";
import { expandAuditEvent } from "../../shared/audit.ts";
import { AvroCodec } from "../../shared/wire/codec.ts";
import { readTopicToEnd } from "../../shared/kafka.ts";
import { topicNames } from "../../shared/topics.ts";
import { flushAuditOutbox, pendingAuditEvents } from "../audit-outbox.ts";
import { formatAuditEvent, matchesAudit } from "../audit-query.ts";
import type { AuditFilter } from "../audit-query.ts";
import { adminKafka, namespaceOption, parseDate, withDb } from "../cli.ts";

export function addAuditCommands(program: Command): void {
  const auditCommands = program.command("audit").description("audit.v1: read it back; send the admin CLI's queued events");
  namespaceOption(
    auditCommands
      .command("list")
      .description("events on audit.v1, oldest first, one per line (time, service, actor, action, subject, details)"),
  )
    .option("--subject <id>", "the event's subject: a record id, partner id, key id, ...")
    .option("--action <action>", "an action, or a prefix ending in '.' (feed., key., policy.)")
    .option("--partner <id>", "a partner's policy and access events and every feed record it was sent")
    .option("--actor <name>", "events by this operator, agency or service principal")
    .option("--service <name>", "ingest, dedup, distribution or admin")
    .option("--since <iso>", "events at or after this time")
    .option("--json", "one JSON object per line instead", false)
    .action(
      async (o: {
        namespace: string;
        subject?: string;
        action?: string;
        partner?: string;
        actor?: string;
        service?: string;
        since?: string;
        json: boolean;
      }) => {
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
          .flatMap((value) => expandAuditEvent(codec.decode("AuditEvent", value).value))
          .filter((e) => matchesAudit(e, filter))
          .sort((a, b) => a.at - b.at);
        for (const e of events) console.log(o.json ? JSON.stringify(e) : formatAuditEvent(e));
        console.error(`${events.length} event(s)`);
      },
    );
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
}
