/**
 * `hashrelay partners`: registers and lists feed partners, and reports how far each Kafka partner's
 * sink is behind its feed. `lag` exits 2 when a partner lost records to the feed's retention.
 */
import type { Command } from "commander";
import { listPolicies } from "../../distribution/policy-store.ts";
import { consumerGroups } from "../../shared/kafka-access.ts";
import { migrate } from "../../shared/postgres.ts";
import { topicNames } from "../../shared/topics.ts";
import { partnerRegistered } from "../audit.ts";
import { feedLag } from "../../shared/feed-lag.ts";
import { listPartners, registerPartner } from "../registry.ts";
import {
  DISTRIBUTION_MIGRATIONS_DIR,
  adminKafka,
  auditTarget,
  audited,
  commitAudited,
  namespaceOption,
  sendAudit,
  withDb,
} from "../cli.ts";
import type { AuditOptions } from "../cli.ts";

export function addPartnerCommands(program: Command): void {
  const partners = program.command("partners").description("feed partners");
  audited(partners.command("register").requiredOption("--id <id>", "partner id, e.g. hotline-uk").requiredOption("--name <name>")).action(
    async (o: { id: string; name: string } & AuditOptions) => {
      const { actor, topics } = auditTarget(o);
      const partner = { partnerId: o.id, name: o.name };
      const { event } = await commitAudited(
        topics,
        (db) => registerPartner(db, partner),
        () => partnerRegistered(actor, partner),
      );
      console.log(`partner ${o.id} registered`);
      await sendAudit(topics, event);
    },
  );
  partners.command("list").action(async () => {
    for (const p of await withDb(listPartners)) console.log(`${p.partnerId}\t${p.name}`);
  });
  namespaceOption(
    partners.command("lag").description("how far each Kafka partner's sink is behind its feed; exit 2 if one lost records to retention"),
  ).action(async (o: { namespace: string }) => {
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
        console.log(
          `${policy.partnerId}\t${report.lost ? "LOST" : report.lag ? "behind" : "ok"}\tlag ${report.lag}\t` +
            `${parts}${suspension ? "\t(suspended)" : ""}`,
        );
      }
    } finally {
      await admin.disconnect();
    }
    if (lost) {
      console.error(
        `${lost} partner(s) fell behind the feed's retention: records they never read, REMOVE tombstones included, are gone; ` +
          "re-bootstrap them from a snapshot",
      );
      process.exitCode = 2;
    }
  });
}
