/**
 * distribution's apply step for the partners' feedback topics, and the step that applies review
 * decisions. Both run under the distribution apply lock, so they re-plan records (planner.ts) with
 * the chain heads and ledger exactly as the canonical apply step does, and every partner sees a
 * review's effect as UPSERT or REMOVE in its own chain.
 *
 * Feedback is exactly-once like everything else (the consumer's offsets commit with the stored
 * feedback), and a feedbackId is accepted once: a second record with it is a replay. Refused
 * records go to the dead-letter topic with their original bytes and reason, and are audited.
 */
import { DISTRIBUTION_APPLY_LOCK } from "../shared/advisory-locks.ts";
import { auditBatches } from "../shared/audit.ts";
import type { AuditEventInput } from "../shared/audit.ts";
import { buildRejection } from "../shared/dead-letter.ts";
import { HashrelayError, ValidationError } from "../shared/errors.ts";
import type { FetchedMessage, UnappliedBatch, Applied } from "../shared/exactly-once-step.ts";
import type { KeyLookup } from "../shared/key-registry.ts";
import { inTransaction } from "../shared/postgres.ts";
import type { PoolClient, Queryable } from "../shared/postgres.ts";
import type { PartnerFeedback } from "../shared/wire/records.ts";
import { DISTRIBUTION_ACTOR, auditOutbox, disclosureEvents } from "./audit.ts";
import type { DisclosureCause } from "./audit.ts";
import { partnerOfFeedbackTopic, verifyFeedback } from "./feedback.ts";
import { feedbackReceived, feedbackRefused, reviewApplied, reviewOpened } from "./feedback-audit.ts";
import {
  heldRecordsAfter,
  markDecisionsApplied,
  reportFalsePositive,
  resolveRecordRef,
  storeFeedback,
  storedBodies,
  takeUnappliedDecisions,
} from "./feedback-store.ts";
import { FeedWriter, recordRef } from "./feed-writer.ts";
import { FeedLedger } from "./planner.ts";
import { SERVICE, distributeRecord, policiesForRound } from "./processor.ts";
import type { DistributionDeps } from "./processor.ts";
import { loadRound, recordDisclosedRefs, takePendingBackfill, writeRound } from "./store.ts";
import type { OutboxMessage } from "./store.ts";

export interface FeedbackDeps extends DistributionDeps {
  /**
   * The hub's key registry (partners' feedback keys), read on the round's own connection: a round
   * holds the apply lock, and waiting for a second pool connection then could wait on rounds that
   * hold one while they wait for the lock.
   */
  keys(tx: Queryable): KeyLookup;
}

export interface FeedbackResult {
  readonly accepted: number;
  readonly refused: number;
  readonly reviewsOpened: number;
  readonly feedRecords: number;
}

/** One round of one partner's feedback topic (the exactly-once consumer's apply function). */
export async function applyFeedbackBatch(
  deps: FeedbackDeps,
  tx: PoolClient,
  batches: readonly UnappliedBatch<FetchedMessage>[],
): Promise<Applied<FeedbackResult>> {
  const now = deps.now?.() ?? Date.now();
  const keys = deps.keys(tx);
  const audit: AuditEventInput[] = [];
  const opened = new Set<string>();
  const rejections: OutboxMessage[] = [];
  let accepted = 0;
  let refused = 0;
  for (const batch of batches) {
    const partnerId = partnerOfFeedbackTopic(batch.topic, deps.topics.feedbackPrefix);
    if (!partnerId) throw new Error(`feedback consumer got a message of ${batch.topic}, not a feedback topic`);
    for (const m of batch.messages) {
      const bytes = m.value ?? Buffer.alloc(0);
      const where = { topic: batch.topic, partition: batch.partition, offset: m.offset };
      try {
        const f = await verifyFeedback(deps.codec, bytes, partnerId, keys, new Date(now));
        const { recordId, revision, review } = await acceptFeedback(tx, f, bytes);
        accepted++;
        audit.push(feedbackReceived(f, recordId, revision));
        if (review === "opened") {
          opened.add(recordId);
          audit.push(reviewOpened(f, recordId, revision));
        }
      } catch (err) {
        // Anything else (the database, a bug) rolls the round back and it is tried again.
        if (!(err instanceof HashrelayError)) throw err;
        refused++;
        const rejection = buildRejection(bytes, err.reason, `partner ${partnerId}: ${err.detail}`, {
          service: SERVICE,
          channel: "kafka",
          sourceTopic: where.topic,
          sourcePartition: where.partition,
          sourceOffset: where.offset,
        });
        rejections.push({ topic: deps.topics.rejected, key: null, value: deps.codec.encode("Rejection", rejection), partition: null });
        audit.push(feedbackRefused(partnerId, where, err.reason, claimedFeedbackId(deps, bytes)));
        deps.logger.warn({ partnerId, reason: err.reason, ...where }, "partner feedback refused");
      }
    }
  }
  const extra = [...rejections, ...auditOutbox(deps.codec, deps.topics, auditBatches(SERVICE, DISTRIBUTION_ACTOR, now, audit))];
  const feedRecords = await replanRecords(deps, tx, [...opened], { kind: "review", state: "open" }, now, extra);
  return { result: { accepted, refused, reviewsOpened: opened.size, feedRecords } };
}

/** Resolves the recordRef for this partner and stores the feedback; a FALSE_POSITIVE opens (or adds to) the record's review. */
async function acceptFeedback(
  tx: PoolClient,
  f: PartnerFeedback,
  bytes: Buffer,
): Promise<{ recordId: string; revision: number | null; review: "opened" | "reported" | "decided" | null }> {
  const ref = await resolveRecordRef(tx, f.partnerId, f.recordRef);
  if (ref.kind === "foreign") {
    throw new ValidationError("FOREIGN_RECORD_REF", `recordRef ${f.recordRef} was issued to another partner, not to ${f.partnerId}`);
  }
  if (ref.kind === "unknown")
    throw new ValidationError("UNKNOWN_RECORD_REF", `recordRef ${f.recordRef} was never issued to ${f.partnerId}`);
  if (!(await storeFeedback(tx, f, ref.recordId, bytes))) {
    throw new ValidationError("FEEDBACK_REPLAYED", `feedbackId ${f.feedbackId} was already received; a new report needs a new id`);
  }
  const { rows } = await tx.query<{ revision: string }>("SELECT revision FROM distributed_records WHERE record_id = $1", [ref.recordId]);
  const revision = rows[0] ? Number(rows[0].revision) : null;
  const review = f.kind === "FALSE_POSITIVE" ? await reportFalsePositive(tx, ref.recordId, f.feedbackId) : null;
  return { recordId: ref.recordId, revision, review };
}

/** The feedbackId a refused message claims, when it decodes that far (for the audit trail only). */
function claimedFeedbackId(deps: FeedbackDeps, bytes: Buffer): string | null {
  try {
    return deps.codec.decode("PartnerFeedback", bytes).value.feedbackId.slice(0, 64) || null;
  } catch {
    return null;
  }
}

/**
 * Plans these records' stored revisions again for every partner, as policy reconciliation does (the
 * review state loaded with the round decides who is withheld), and writes the round with `extra`
 * outbox messages queued before the feed records. Returns the feed records issued.
 */
async function replanRecords(
  deps: DistributionDeps,
  tx: PoolClient,
  recordIds: readonly string[],
  cause: DisclosureCause,
  now: number,
  extra: readonly OutboxMessage[],
): Promise<number> {
  const policies = await policiesForRound(deps, tx);
  const records = (await storedBodies(tx, recordIds)).map((b) => deps.codec.decode("CanonicalRecord", b).value);
  const ledger = new FeedLedger();
  for (const r of records) ledger.addRecord(r);
  const heads = await loadRound(
    tx,
    deps.codec,
    ledger,
    policies.map((p) => p.partnerId),
    records,
  );
  const writer = new FeedWriter(heads, deps.codec, deps.topics, deps.hub, now, deps.feedSigning);
  // The same revisions again: their unmappable categories were counted when they arrived.
  for (const r of records) distributeRecord(ledger, writer, r, policies, []);
  const feed = writer.finish();
  const audit = auditOutbox(deps.codec, deps.topics, disclosureEvents(writer.issued, cause, now));
  await writeRound(tx, ledger, {
    unmappable: [],
    heads: feed.heads,
    outbox: [...extra, ...feed.outbox, ...audit],
    feedLog: feed.log,
    refs: feed.refs,
  });
  return writer.issued.length;
}

const DECISIONS_PER_TRANSACTION = 100;

/**
 * Applies the review decisions operators recorded (`hashrelay review decide`): each decided record
 * is planned again with its review closed, so the partners that were withheld from it get what its
 * latest revision implies (the record restored, or the authority's correction). Returns how many.
 */
export async function applyReviewDecisions(deps: DistributionDeps): Promise<number> {
  let applied = 0;
  for (;;) {
    const n = await inTransaction(deps.pool, async (tx) => {
      await tx.query("SELECT pg_advisory_xact_lock($1)", [DISTRIBUTION_APPLY_LOCK]);
      const decisions = await takeUnappliedDecisions(tx, DECISIONS_PER_TRANSACTION);
      if (!decisions.length) return 0;
      const now = deps.now?.() ?? Date.now();
      const ids = decisions.map((d) => d.recordId);
      const { rows } = await tx.query<{ record_id: string; revision: string }>(
        "SELECT record_id, revision FROM distributed_records WHERE record_id = ANY($1::uuid[])",
        [ids],
      );
      const revisions = new Map(rows.map((r) => [r.record_id, Number(r.revision)]));
      await markDecisionsApplied(tx, ids);
      const applied = decisions.map((d) => reviewApplied(d.recordId, d.state, d.decidedBy, revisions.get(d.recordId) ?? null));
      const audit = auditOutbox(deps.codec, deps.topics, auditBatches(SERVICE, DISTRIBUTION_ACTOR, now, applied));
      // One round per decision kind, each over a fresh load: the second sees the first's writes.
      for (const state of ["upheld", "accepted"] as const) {
        const decided = decisions.filter((d) => d.state === state).map((d) => d.recordId);
        await replanRecords(deps, tx, decided, { kind: "review", state }, now, state === "accepted" ? audit : []);
      }
      return decisions.length;
    });
    applied += n;
    if (n < DECISIONS_PER_TRANSACTION) return applied;
  }
}

const BACKFILL_PAGE = 1000;

/**
 * Once, on a hub whose partners held records before disclosed_refs existed: the refs of what each
 * partner holds now, so feedback about them resolves. Returns the refs written (0 when nothing to do).
 */
export async function backfillDisclosedRefs(deps: Pick<DistributionDeps, "pool" | "hub" | "logger">): Promise<number> {
  return inTransaction(deps.pool, async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock($1)", [DISTRIBUTION_APPLY_LOCK]);
    if (!(await takePendingBackfill(tx, "disclosed_refs"))) return 0;
    let written = 0;
    let after = { partnerId: "", recordId: "00000000-0000-0000-0000-000000000000" };
    for (;;) {
      const page = await heldRecordsAfter(tx, after, BACKFILL_PAGE);
      await recordDisclosedRefs(
        tx,
        page.map((h) => ({ ...h, recordRef: recordRef(deps.hub.pseudonymSecret, h.partnerId, h.recordId) })),
      );
      written += page.length;
      if (page.length < BACKFILL_PAGE) break;
      after = page[page.length - 1] as { partnerId: string; recordId: string };
    }
    deps.logger.info({ written }, "recordRefs of partners' holdings backfilled for feedback");
    return written;
  });
}
