/**
 * The demo's closing summary: what was submitted and rejected, what reached the dead-letter topic,
 * the canonical records, each partner's holdings reconciled against what its policy entitles it
 * to, the broker's refusal of other partners' feeds, the taskforce bundle and end-to-end latency.
 * It also shows the VICS export's placeholder PhotoDNA as distinct records and the degenerate
 * perceptual values by reason, the partners' feedback with each review's outcome, and what the
 * local Prometheus saw (targets up, alerts fired). The demo fails (exit 1) unless every partner
 * reconciles, each of the export's placeholder items is a live record of its own, the placeholder
 * turned SHARED and the all-zero value CONSTANT, no degenerate value sits in any feed, the access
 * probes come out as expected, each review of the partners' false-positive reports reached both
 * partners as decided, and (with a Prometheus) every target is up and nothing pages.
 */
import type { Kafka } from "kafkajs";
import { degenerateCounts } from "../services/dedup/degenerate-report.ts";
import { loadPolicies } from "../services/distribution/policy-store.ts";
import { expectedHoldings, partnerHoldings, reconcile } from "../services/distribution/reconcile.ts";
import { openReviews } from "../services/distribution/review-store.ts";
import type { FeedbackOutcome } from "./feedback.ts";
import type { Receipt } from "../services/shared/wire/ingest-api.ts";
import type { Pool } from "../services/shared/postgres.ts";
import { brokerSettings, codec, names, namespace, workDir } from "./context.ts";
import { serviceEnv } from "./services.ts";
import { printMonitoring } from "./prometheus.ts";
import type { MonitoringReport } from "./prometheus.ts";
import { PLACEHOLDER_ITEMS, PLACEHOLDER_PHOTODNA } from "./workload.ts";

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

/**
 * Prints what reached each partner, the rejections by reason and the end-to-end latency; returns
 * whether every partner reconciles and the broker keeps each partner to its own feed.
 */
export async function printSummary(o: {
  hub: Pool;
  kafka: Kafka;
  partnerPools: Record<string, Pool>;
  workload: { receipt: Receipt; firstSubmitted: Map<string, number> };
  imported: { accepted: number; rejected: number };
  bundle: { object: string; count: number };
  feedback: FeedbackOutcome;
  /** What the local Prometheus saw; null when none runs. */
  monitoring: MonitoringReport | null;
}): Promise<boolean> {
  const { hub, kafka, partnerPools, bundle } = o;
  const { receipt, firstSubmitted } = o.workload;
  const stats = async (sql: string, params: unknown[] = [], pool: Pool = hub) =>
    Number((await pool.query<{ n: string }>(sql, params)).rows[0]?.n ?? 0);
  const canonical = await stats("SELECT count(*)::text AS n FROM canonical_records WHERE NOT deleted");
  const merged = await stats("SELECT count(*)::text AS n FROM canonical_records WHERE merged_into IS NOT NULL");
  const withdrawn = await stats("SELECT count(*)::text AS n FROM canonical_records WHERE deleted AND merged_into IS NULL");
  const allPolicies = await loadPolicies(hub);
  const records = (await hub.query<{ body: Buffer }>("SELECT body FROM distributed_records")).rows.map(
    (r) => codec.decode("CanonicalRecord", r.body).value,
  );
  const statusCounts = new Map<string, number>();
  for (const r of records) if (!r.deleted) statusCounts.set(r.gradingStatus, (statusCounts.get(r.gradingStatus) ?? 0) + 1);

  console.log("\n══════════════════════════ hashrelay demo summary ══════════════════════════");
  console.log(
    `submitted over HTTP:      ${receipt.accepted + receipt.duplicates + receipt.rejected} ` +
      `(accepted ${receipt.accepted}, duplicates ${receipt.duplicates}, rejected ${receipt.rejected})`,
  );
  for (const [reason, n] of Object.entries(receipt.byReason)) console.log(`  rejected ${reason}: ${n}`);
  const dlq = new Map<string, number>();
  const { readTopicOnce } = await import("./dlq.ts");
  for (const r of await readTopicOnce(kafka, names.rejected))
    dlq.set(`${r.service}/${r.reason}`, (dlq.get(`${r.service}/${r.reason}`) ?? 0) + 1);
  console.log(`dead-letter topic:        ${[...dlq].map(([k, n]) => `${k} ${n}`).join(", ") || "empty"} (original bytes kept)`);
  console.log(`VICS via S3 import:       accepted ${o.imported.accepted}, rejected ${o.imported.rejected}`);
  console.log(
    `canonical records:        ${canonical} live (${[...statusCounts].map(([s, n]) => `${s} ${n}`).join(", ")}), ` +
      `${merged} merged away, ${withdrawn} withdrawn`,
  );
  // Perceptual values are no identity: the export's items sharing a placeholder stay distinct records.
  const placeholderRecords = await stats(
    `SELECT count(DISTINCT h.record_id)::text AS n FROM record_hashes h JOIN canonical_records r USING (record_id)
      WHERE h.alg = 'photodna' AND h.value = $1 AND NOT r.deleted`,
    [PLACEHOLDER_PHOTODNA],
  );
  const degenerate = await degenerateCounts(hub);
  const inFeeds = await stats("SELECT count(*)::text AS n FROM feed_entries f JOIN degenerate_hashes d USING (alg, value)");
  // The export has one item with the placeholder per PLACEHOLDER_ITEMS and one all-zero PhotoDNA.
  const placeholderOk = placeholderRecords === PLACEHOLDER_ITEMS;
  const degenerateOk = (degenerate.SHARED ?? 0) >= 1 && (degenerate.CONSTANT ?? 0) >= 1 && inFeeds === 0;
  console.log(
    `placeholder PhotoDNA:     on ${placeholderRecords} distinct live records (different MD5s; never joined)` +
      (placeholderOk ? "" : `; FAILED (the export has ${PLACEHOLDER_ITEMS} items carrying it)`),
  );
  console.log(
    `degenerate perceptual:    ${
      Object.entries(degenerate)
        .map(([reason, n]) => `${reason} ${n}`)
        .join(", ") || "none"
    } ` +
      `(kept out of matching; in partner feeds: ${inFeeds})` +
      (degenerateOk ? "" : "; FAILED (expected SHARED and CONSTANT each at least 1, and none in a feed)"),
  );
  let allChecksPassed = placeholderOk && degenerateOk && o.feedback.ok;
  const underReview = await openReviews(hub);
  for (const policy of allPolicies.filter((p) => p.delivery !== "s3")) {
    const pool = partnerPools[policy.partnerId] as Pool;
    const live = await stats("SELECT count(*)::text AS n FROM partner_hashes WHERE NOT removed", [], pool);
    const removed = await stats("SELECT count(*)::text AS n FROM partner_hashes WHERE removed", [], pool);
    const alerts = await stats("SELECT count(*)::text AS n FROM sink_alerts", [], pool);
    const report = reconcile(expectedHoldings(policy, records, underReview), await partnerHoldings(pool));
    allChecksPassed &&= report.ok;
    const outcome = report.ok
      ? "OK"
      : `FAILED (missing ${report.missing.length}, unexpected ${report.unexpected.length}, wrong category ${report.wrongCategory.length})`;
    console.log(`partner ${policy.partnerId.padEnd(12)} rows ${live}, removals ${removed}, alerts ${alerts}; reconciliation ${outcome}`);
  }
  const fb = o.feedback;
  console.log(
    `partner feedback:         ${Object.entries(fb.accepted)
      .map(([kind, n]) => `${kind} ${n}`)
      .join(", ")} accepted (operators only; counts per record: bin/hashrelay review counts)`,
  );
  for (const r of fb.reviews) {
    const partners = Object.entries(r.partners)
      .map(([id, state]) => `${id} ${state}`)
      .join(", ");
    console.log(`  review ${r.recordId.slice(0, 8)}… ${r.decision}: ${partners}`);
  }
  console.log(`  review outcomes as expected in both partners' databases: ${fb.ok ? "yes" : "NO"}`);
  // The broker's side of minimisation: one partner's credentials reach its feed and nothing else.
  const { probePartnerAccess } = await import("./access-check.ts");
  const probes = await probePartnerAccess(brokerSettings(), "hotline-uk", [
    names.feed("hotline-uk"),
    names.feed("industry-x"),
    names.canonical,
  ]);
  const own = probes[0]?.outcome === "readable";
  const othersRefused = probes.slice(1).every((p) => p.outcome !== "readable");
  allChecksPassed &&= own && othersRefused;
  const transport = brokerSettings().KAFKA_SSL === "true" ? "over TLS, " : "";
  console.log(
    `Kafka access:             partner-hotline-uk (${transport}SCRAM) ` +
      `${probes.map((p) => `${p.topic.slice(namespace.length + 1)} ${p.outcome}`).join("; ")}`,
  );
  const unmappable = await stats("SELECT coalesce(sum(count), 0)::text AS n FROM unmappable_counts WHERE partner_id = 'taskforce'");
  console.log(
    `taskforce bundle:         s3://${serviceEnv["S3_BUCKET"]}/${bundle.object} ` +
      `(${bundle.count} hashes, ICS; ${unmappable} records unmappable to ICS left out)`,
  );
  console.log(`                          signed manifest s3://${serviceEnv["S3_BUCKET"]}/${bundle.object}.manifest.json`);
  const hotline = partnerPools["hotline-uk"] as Pool;
  const { rows: arrivals } = await hotline.query<{ alg: string; value: string; at: Date }>(
    "SELECT alg, value, updated_at AS at FROM partner_hashes",
  );
  const latencies = arrivals
    .map((r) => {
      const sent = firstSubmitted.get(`${r.alg}:${r.value}`);
      return sent === undefined ? null : r.at.getTime() - sent;
    })
    .filter((x): x is number => x !== null && x >= 0)
    .sort((a, b) => a - b);
  console.log(
    `end-to-end latency:       p50 ${percentile(latencies, 50)} ms, p99 ${percentile(latencies, 99)} ms ` +
      `(force HTTP submission to row in hotline-uk's database, ${latencies.length} hashes; includes queueing behind the whole burst)`,
  );
  allChecksPassed &&= printMonitoring(o.monitoring);
  console.log(`logs and keys:            ${workDir}`);
  console.log("════════════════════════════════════════════════════════════════════════════");
  return allChecksPassed;
}
