/**
 * `hashrelay review`: the records partners reported as false positives, feedback counts per record,
 * and the grading authority's decision on a review, stored with its audit event in one
 * transaction. Distribution applies a decision within DISTRIBUTION_POLICY_REFRESH_MS: the
 * partners that were withheld from the record get what its latest revision implies.
 */
import { Option } from "commander";
import type { Command } from "commander";
import { decideReview, feedbackCounts, listReviews } from "../../distribution/review-store.ts";
import type { ReviewState } from "../../distribution/review-store.ts";
import { migrate } from "../../shared/postgres.ts";
import { reviewDecided } from "../audit.ts";
import { DISTRIBUTION_MIGRATIONS_DIR, auditTarget, audited, commitAudited, sendAudit, withDb } from "../cli.ts";
import type { AuditOptions } from "../cli.ts";

async function migrateDistribution(): Promise<void> {
  await withDb((db) => migrate(db, [{ namespace: "distribution", dir: DISTRIBUTION_MIGRATIONS_DIR }]));
}

export function addReviewCommands(program: Command): void {
  const review = program.command("review").description("false-positive reviews and partner feedback (operators only)");
  review
    .command("list")
    .description("records under review or decided: revision under review, current revision, reports, decision")
    .addOption(new Option("--state <state>").choices(["open", "upheld", "accepted"]))
    .action(async (o: { state?: ReviewState }) => {
      await migrateDistribution();
      for (const r of await withDb((db) => listReviews(db, o.state))) {
        const applied = r.appliedAt ? `applied ${r.appliedAt.toISOString()}` : "awaiting distribution";
        const decided = r.decidedAt ? `by ${r.decidedBy} ${r.decidedAt.toISOString()}, ${applied}` : "-";
        console.log(
          `${r.recordId}\t${r.state}\topened ${r.openedAt.toISOString()}\trev ${r.openedRevision}->${r.currentRevision}\t` +
            `${r.reports} report(s)\t${decided}`,
        );
      }
    });
  review
    .command("counts")
    .description("feedback per record: matches reported, false positives, not CSAM in the partner's jurisdiction, partners")
    .option("--limit <n>", "at most this many records", "50")
    .action(async (o: { limit: string }) => {
      await migrateDistribution();
      for (const c of await withDb((db) => feedbackCounts(db, Number(o.limit)))) {
        console.log(
          `${c.recordId}\tmatches ${c.matches}\tfalse-positive ${c.falsePositives}\tnot-csam ${c.notCsam}\tpartners ${c.partners}`,
        );
      }
    });
  audited(
    review
      .command("decide")
      .description(
        "record the grading authority's decision: --upheld (the record stands and is restored) or --accepted " +
          "(the authority has corrected it through a RETRACT or a regrade, which withheld partners now get)",
      )
      .requiredOption("--record <id>", "hub record id (review list)")
      .requiredOption("--authority <agency>", "the grading authority deciding")
      .option("--upheld", "the record is right: restore it")
      .option("--accepted", "the report is right: the authority's correction stands")
      .option("--note <text>", "why (kept at the hub)", ""),
  ).action(async (o: { record: string; authority: string; upheld?: boolean; accepted?: boolean; note: string } & AuditOptions) => {
    const { actor, topics } = auditTarget(o);
    if (Boolean(o.upheld) === Boolean(o.accepted)) throw new Error("give exactly one of --upheld or --accepted");
    const decision = o.upheld ? "upheld" : "accepted";
    await migrateDistribution();
    const { result, event } = await commitAudited(
      topics,
      (db) => decideReview(db, { recordId: o.record, decision, authority: o.authority, note: o.note }),
      (r) => reviewDecided(actor, r.recordId, decision, o.authority, r.currentRevision),
    );
    console.log(`review of ${result.recordId} ${decision} by ${o.authority}; distribution applies it to partner feeds shortly`);
    await sendAudit(topics, event);
  });
}
