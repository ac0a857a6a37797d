/**
 * The chaos run's reconciliation, made from outside the services: what Kafka's topics hold (read
 * to their ends as the admin) against what the driver knows it sent and what each database holds.
 * Every check is a count of differences, and the run passes only when all of them are zero:
 *   - every accepted submission applied by dedup, or superseded by its agency's newer sighting
 *     (superseded.ts), and nothing applied that was never sent;
 *   - the latest revision of each record on the canonical topic is the one in dedup's store;
 *   - every partner database equals what its current policy implies from the canonical topic;
 *   - each feed partition on Kafka is a contiguous, hash-chained, hub-signed run from seq 1 to the
 *     hub's head, a re-sent seq byte-identical, and the partner applied exactly that run;
 *   - one disclosure event per (partner, partition, seq) issued, and none for seqs never issued;
 *   - every outbox empty, no sink alert, no halted partition;
 *   - every bad record on the DLQ, and nothing else there;
 *   - S3 exports whole, signed, never two of one record, and covering each feed (reconcile-exports.ts).
 */
import { createPublicKey } from "node:crypto";
import type { Kafka } from "kafkajs";
import { expectedHoldings, partnerHoldings, reconcile } from "../../services/distribution/reconcile.ts";
import { loadPolicies } from "../../services/distribution/policy-store.ts";
import { expandAuditEvent } from "../../services/shared/audit.ts";
import { readTopicToEnd } from "../../services/shared/kafka.ts";
import type { Pool } from "../../services/shared/postgres.ts";
import { AvroCodec } from "../../services/shared/wire/codec.ts";
import { GENESIS_DIGEST, feedRecordDigest } from "../../services/shared/wire/feed-chain.ts";
import type { CanonicalRecord, FeedRecord } from "../../services/shared/wire/records.ts";
import { signatureMatches } from "../../services/shared/wire/signing.ts";
import type { ChaosHub } from "./hub.ts";
import { checkExports } from "./reconcile-exports.ts";
import { supersededSubmissions } from "./superseded.ts";
import type { ExportStore } from "./reconcile-exports.ts";
import type { Ledger } from "./traffic.ts";

export interface Reconciliation {
  /** Figures that describe the run (how much there was to check). */
  readonly figures: Record<string, number>;
  /** Differences by check: every one must be zero. */
  readonly differences: Record<string, number>;
  /** A few examples of each non-zero difference. */
  readonly examples: string[];
}

const codec = new AvroCodec();
const count = async (pool: Pool, sql: string, params: unknown[] = []) =>
  Number((await pool.query<{ n: string }>(sql, params)).rows[0]?.n ?? 0);

export async function reconcileRun(h: ChaosHub, ledger: Ledger, kafka: Kafka, exports: ExportStore): Promise<Reconciliation> {
  const figures: Record<string, number> = {};
  const differences: Record<string, number> = {};
  const examples: string[] = [];
  const differ = (check: string, items: readonly string[]) => {
    differences[check] = items.length;
    for (const i of items.slice(0, 3)) examples.push(`${check}: ${i}`);
  };
  const topic = (name: string) => readTopicToEnd(kafka, name, "chaos-reconcile", 300_000);

  // Submissions: accepted ⊆ applied ∪ superseded, applied ⊆ accepted ∪ uncertain.
  const applied = new Set(
    (await h.hub.query<{ submission_id: string }>("SELECT submission_id FROM applied_submissions")).rows.map((r) => r.submission_id),
  );
  const rejections = (await topic(h.names.rejected)).map((b) => codec.decode("Rejection", b).value);
  const superseded = await supersededSubmissions(h.hub, rejections, ledger.accepted);
  figures["accepted submissions"] = ledger.accepted.size;
  figures["uncertain submissions (given up, not counted)"] = ledger.uncertain.size;
  figures["applied submissions"] = applied.size;
  figures["accepted, then superseded by the agency's newer sighting (STALE_SUBMISSION)"] = superseded.size;
  differ(
    "accepted but not applied",
    [...ledger.accepted].filter((id) => !applied.has(id) && !superseded.has(id)),
  );
  differ(
    "applied but never accepted",
    [...applied].filter((id) => !ledger.accepted.has(id) && !ledger.uncertain.has(id)),
  );
  differ(
    "good submissions rejected",
    ledger.wronglyRejected.map((r) => `${r.submissionId} ${r.reason}`),
  );

  // Canonical topic against dedup's store.
  const revisions = (await topic(h.names.canonical)).map((b) => codec.decode("CanonicalRecord", b).value);
  const latest = new Map<string, CanonicalRecord>();
  for (const r of revisions) if ((latest.get(r.recordId)?.revision ?? -1) < r.revision) latest.set(r.recordId, r);
  const store = new Map(
    (await h.hub.query<{ record_id: string; revision: string }>("SELECT record_id, revision::text FROM canonical_records")).rows.map(
      (r) => [r.record_id, Number(r.revision)],
    ),
  );
  figures["canonical revisions on Kafka"] = revisions.length;
  figures["canonical records"] = latest.size;
  figures["merged or withdrawn records"] = [...latest.values()].filter((r) => r.deleted || r.mergedInto).length;
  differ(
    "store revision not on the canonical topic",
    [...store].filter(([id, rev]) => latest.get(id)?.revision !== rev).map(([id, rev]) => `${id} r${rev}`),
  );
  differ(
    "canonical topic record not in the store",
    [...latest.keys()].filter((id) => !store.has(id)),
  );

  // Partner databases against their policies over the canonical topic.
  for (const policy of await loadPolicies(h.hub)) {
    const db = h.partners[policy.partnerId];
    if (!db) continue;
    const report = reconcile(expectedHoldings(policy, revisions), await partnerHoldings(db.pool));
    figures[`${policy.partnerId} rows expected (policy v${policy.version})`] = report.expected;
    differ(`${policy.partnerId} missing rows`, report.missing);
    differ(`${policy.partnerId} unexpected rows`, report.unexpected);
    differ(`${policy.partnerId} wrong category`, report.wrongCategory);
  }

  await checkFeeds(h, topic, figures, differ);
  await checkDisclosures(h, topic, figures, differ);
  const feedTopic = (partnerId: string) => readTopicToEnd(kafka, h.names.feed(partnerId), "chaos-reconcile-exports", 300_000);
  await checkExports(h, exports, feedTopic, figures, differ);

  const outboxes = await count(
    h.hub,
    "SELECT ((SELECT count(*) FROM outbox) + (SELECT count(*) FROM feed_outbox) + (SELECT count(*) FROM admin_audit_outbox))::text AS n",
  );
  differ("rows left in an outbox", outboxes ? [`${outboxes} rows`] : []);

  // The DLQ: each bad record's token in some rejection's original bytes; besides them only replays
  // dedup ignored (a submission ingest published twice, when it was killed between publishing it and
  // recording it, and the force sent it again) of submissions that were applied, and superseded ones.
  const found = new Set<string>();
  const stray: string[] = [];
  let replays = 0;
  for (const r of rejections) {
    const text = Buffer.from(r.originalBytes).toString("utf8");
    const token = [...ledger.badTokens.keys()].find((t) => text.includes(t));
    if (token) found.add(token);
    else if (r.reason === "DUPLICATE_SUBMISSION" && r.service === "dedup" && r.submissionId && applied.has(r.submissionId)) replays++;
    else if (r.submissionId && superseded.has(r.submissionId)) continue;
    else stray.push(`${r.reason} from ${r.service}: ${r.detail}`);
  }
  figures["bad records sent"] = ledger.badTokens.size;
  figures["rejections on the DLQ"] = rejections.length;
  figures["of which replays dedup ignored (already applied)"] = replays;
  differ(
    "bad record not on the DLQ",
    [...ledger.badTokens].filter(([t]) => !found.has(t)).map(([t, what]) => `${what} ${t}`),
  );
  differ("rejection on the DLQ of no bad record", stray);
  return { figures, differences, examples };
}

type Differ = (check: string, items: readonly string[]) => void;

/** Each partner's feed on Kafka: contiguous from 1 to the hub's head, chained, signed, and what the partner applied. */
async function checkFeeds(
  h: ChaosHub,
  topic: (t: string) => Promise<Buffer[]>,
  figures: Record<string, number>,
  differ: Differ,
): Promise<void> {
  const hubKey = createPublicKey(h.hubKey.privateKey);
  for (const partnerId of Object.keys(h.partners)) {
    const db = (h.partners[partnerId] as { pool: Pool }).pool;
    const heads = new Map(
      (
        await h.hub.query<{ partition: number; last_seq: string }>(
          "SELECT partition, last_seq::text FROM feed_partitions WHERE partner_id = $1",
          [partnerId],
        )
      ).rows.map((r) => [r.partition, Number(r.last_seq)]),
    );
    const bySeq = new Map<string, { bytes: Buffer; record: FeedRecord; writer: import("avsc").Type }>();
    const problems: string[] = [];
    let messages = 0;
    for (const bytes of await topic(h.names.feed(partnerId))) {
      messages++;
      const { value: record, writer } = codec.decode("FeedRecord", bytes);
      const key = `${record.partition}:${record.seq}`;
      const prior = bySeq.get(key);
      if (prior && !prior.bytes.equals(bytes)) problems.push(`two different records at ${key}`);
      bySeq.set(key, { bytes, record, writer: writer.type });
      if (!signatureMatches("FeedRecord", writer.type, record, hubKey)) problems.push(`bad signature at ${key}`);
    }
    const gaps: string[] = [];
    for (const [partition, head] of heads) {
      let prev: Buffer = GENESIS_DIGEST;
      for (let seq = 1; seq <= head; seq++) {
        const entry = bySeq.get(`${partition}:${seq}`);
        if (!entry) {
          gaps.push(`${partition}:${seq} missing from the topic`);
          break;
        }
        if (!entry.record.prevDigest.equals(prev)) problems.push(`chain broken at ${partition}:${seq}`);
        prev = feedRecordDigest(entry.writer, entry.record);
      }
    }
    const beyond = [...bySeq.values()].filter((e) => e.record.seq > (heads.get(e.record.partition) ?? 0));
    figures[`${partnerId} feed records (distinct seqs / messages)`] = bySeq.size;
    figures[`${partnerId} feed messages incl. re-sends`] = messages;
    differ(`${partnerId} feed gap on Kafka`, gaps);
    differ(
      `${partnerId} feed record past the hub's head`,
      beyond.map((e) => `${e.record.partition}:${e.record.seq}`),
    );
    differ(`${partnerId} feed chain or signature`, problems);
    // The partner applied exactly seqs 1..head of every partition.
    const appliedRows = (
      await db.query<{ partition: number; n: string; max: string }>(
        "SELECT partition, count(*)::text AS n, max(seq)::text AS max FROM feed_applied GROUP BY partition",
      )
    ).rows;
    const applied = appliedRows.filter((r) => Number(r.n) !== Number(r.max) || Number(r.max) !== (heads.get(r.partition) ?? 0));
    const unapplied = [...heads].filter(([p, head]) => head > 0 && !appliedRows.some((r) => r.partition === p));
    differ(`${partnerId} applied chain not 1..head`, [
      ...applied.map((r) => `partition ${r.partition}: ${r.n} applied, max ${r.max}, head ${heads.get(r.partition)}`),
      ...unapplied.map(([p, head]) => `partition ${p}: nothing applied, head ${head}`),
    ]);
    const alerts = (await db.query<{ reason: string }>("SELECT reason FROM sink_alerts")).rows.map((r) => r.reason);
    const halted = (await db.query<{ partition: number }>("SELECT partition FROM feed_state WHERE halted_reason IS NOT NULL")).rows;
    differ(`${partnerId} sink alerts`, alerts);
    differ(
      `${partnerId} halted partitions`,
      halted.map((r) => String(r.partition)),
    );
  }
}

/** One disclosure event per issued feed record: re-sent batches carry the same event ids and count once. */
async function checkDisclosures(
  h: ChaosHub,
  topic: (t: string) => Promise<Buffer[]>,
  figures: Record<string, number>,
  differ: Differ,
): Promise<void> {
  const byPosition = new Map<string, Set<string>>();
  for (const bytes of await topic(h.names.audit)) {
    for (const e of expandAuditEvent(codec.decode("AuditEvent", bytes).value)) {
      if (e.action !== "feed.upsert" && e.action !== "feed.remove") continue;
      const key = `${e.detail["partnerId"]}/${e.detail["partition"]}/${e.detail["seq"]}`;
      byPosition.set(key, (byPosition.get(key) ?? new Set()).add(e.eventId));
    }
  }
  const issued = (
    await h.hub.query<{ partner_id: string; partition: number; last_seq: string }>(
      "SELECT partner_id, partition, last_seq::text FROM feed_partitions",
    )
  ).rows;
  const missing: string[] = [];
  let total = 0;
  for (const r of issued) {
    for (let seq = 1; seq <= Number(r.last_seq); seq++) {
      total++;
      if (!byPosition.has(`${r.partner_id}/${r.partition}/${seq}`)) missing.push(`${r.partner_id}/${r.partition}/${seq}`);
    }
  }
  const heads = new Map(issued.map((r) => [`${r.partner_id}/${r.partition}`, Number(r.last_seq)]));
  figures["disclosure events"] = byPosition.size;
  differ(
    "duplicate disclosure for one (partner, seq)",
    [...byPosition].filter(([, ids]) => ids.size > 1).map(([k, ids]) => `${k} ×${ids.size}`),
  );
  differ("feed record without a disclosure event", missing);
  differ(
    "disclosure of a seq never issued",
    [...byPosition.keys()].filter((k) => Number(k.split("/")[2]) > (heads.get(k.split("/").slice(0, 2).join("/")) ?? 0)),
  );
  figures["feed records issued (hub heads)"] = total;
}
