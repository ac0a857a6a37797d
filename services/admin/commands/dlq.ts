/**
 * `hashrelay dlq`: lists the dead-letter topic's rejections and re-drives those that match a filter
 * once their cause is fixed. A re-drive changes Kafka, not only the hub database, so its audit
 * event is recorded after it (recordAudit in cli.ts).
 */
import type { Command } from "commander";
import { kafkaIntakeSink, pgSubmissionLedger } from "../../ingest/adapters.ts";
import { AvroCodec } from "../../shared/wire/codec.ts";
import { createDurableProducer } from "../../shared/kafka.ts";
import { PgKeyRegistry } from "../../shared/key-registry.ts";
import { migrate } from "../../shared/postgres.ts";
import { topicNames } from "../../shared/topics.ts";
import { dlqRedriven } from "../audit.ts";
import { matches, readRejections, redrive } from "../redrive.ts";
import type { RedriveFilter } from "../redrive.ts";
import { INGEST_MIGRATIONS_DIR, adminKafka, auditTarget, audited, namespaceOption, parseDate, recordAudit, withDb } from "../cli.ts";
import type { AuditOptions } from "../cli.ts";

export function addDlqCommands(program: Command): void {
  const dlq = program.command("dlq").description("the dead-letter topic (hashes.rejected.v1)");
  const dlqFilter = (cmd: Command) =>
    namespaceOption(
      cmd
        .option("--reason <code>", "only this reason code")
        .option("--service <name>", "only rejections made by this service (ingest, dedup, distribution)")
        .option("--agency <id>", "only this agency's rejections")
        .option("--since <iso>", "only rejections at or after this time"),
    );
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
      console.log(
        `${new Date(r.rejectedAt).toISOString()}\t${r.service}\t${r.reason}\t` +
          `${r.agencyId ?? "-"}\t${r.submissionId ?? "-"}\t${r.detail.slice(0, 120)}`,
      );
    }
    console.log(`${all.length} rejections`);
  });
  audited(dlqFilter(dlq.command("redrive").description("send matching rejections round again, once their cause is fixed")), {
    namespace: false,
  }).action(async (o: DlqOptions & AuditOptions) => {
    const { actor } = auditTarget(o);
    const codec = new AvroCodec();
    const kafka = kafkaOf();
    const topics = topicNames(o.namespace);
    const report = await withDb(async (db) => {
      await migrate(db, [{ namespace: "ingest", dir: INGEST_MIGRATIONS_DIR }]);
      const producer = createDurableProducer(kafka);
      await producer.connect();
      try {
        return await redrive(
          {
            kafka,
            codec,
            topics,
            intake: {
              codec,
              keys: new PgKeyRegistry(db, 0),
              ledger: pgSubmissionLedger(db),
              sink: kafkaIntakeSink(producer, codec, topics),
            },
          },
          filterOf(o),
        );
      } finally {
        await producer.disconnect();
      }
    });
    console.log(
      `matched ${report.matched}: ${report.republished} sent back to dedup; ${report.readmitted.accepted} re-admitted by ingest ` +
        `(${report.readmitted.duplicates} duplicates, ${report.readmitted.rejected} refused again); ${report.skipped} not re-drivable`,
    );
    await recordAudit(topics, dlqRedriven(actor, topics.rejected, filterOf(o), report));
  });
}
