/**
 * distribution's apply step for hashes.canonical.v1: inside the exactly-once step's transaction
 * (shared/exactly-once-step.ts, which owns the apply lock, the stored offset and COMMIT), a batch
 * is planned for every partner feed (planner.ts), signed and queued (feed-writer.ts) and stored
 * (store.ts). Idempotent on recordId + revision: a repeated or older revision changes nothing, so
 * redelivery and outbox re-sends upstream are harmless; planner.ts explains why the order in which
 * different records arrive does not matter. Every feed record issued is audited (audit.ts) in the
 * same transaction, through feed_outbox. Policy reconciliation and the claims backfill run here too,
 * under the same apply lock.
 */
import { DISTRIBUTION_APPLY_LOCK } from "../shared/advisory-locks.ts";
import type { AvroCodec } from "../shared/wire/codec.ts";
import { buildRejection } from "../shared/dead-letter.ts";
import { reasonOf } from "../shared/errors.ts";
import { applyExactlyOnce } from "../shared/exactly-once-step.ts";
import type { Applied, ExactlyOnceStep, UnappliedBatch } from "../shared/exactly-once-step.ts";
import type { Logger } from "../shared/logging.ts";
import type { CommittedOutbox } from "../shared/outbox-relay.ts";
import { inTransaction } from "../shared/postgres.ts";
import type { Pool, PoolClient, Queryable } from "../shared/postgres.ts";
import type { CanonicalRecord, FeedRecord } from "../shared/wire/records.ts";
import type { TopicNames } from "../shared/topics.ts";
import { auditOutbox, disclosureEvents, policyAppliedEvent } from "./audit.ts";
import { FeedWriter } from "./feed-writer.ts";
import type { FeedSigning, HubSigner } from "./feed-writer.ts";
import { FeedLedger, claimsOfRevision, planRecord, splitHashKey } from "./planner.ts";
import type { PartnerPolicy } from "./policy.ts";
import { ACTIVE_POLICY_VERSIONS, activeVersionsOf } from "./policy-store.ts";
import {
  distributedRecordsAfter,
  forgetAppliedPolicies,
  insertHashClaims,
  loadRound,
  recordPolicyApplied,
  takePendingBackfill,
  writeRound,
} from "./store.ts";
import type { OutboxMessage } from "./store.ts";

export const SERVICE = "distribution";

export interface DistributionDeps {
  readonly pool: Pool;
  readonly codec: AvroCodec;
  readonly topics: TopicNames;
  readonly hub: HubSigner;
  /** Which feed records are signed (feed-writer.ts); every one when left out. */
  readonly feedSigning?: FeedSigning;
  readonly consumerGroup: string;
  readonly logger: Logger;
  /** Current policies; refreshed by the caller. */
  policies(): readonly PartnerPolicy[];
  /**
   * The policies to plan a round with, read in its transaction (which holds the apply lock): the
   * newest stored, reloaded first when they changed (policy refresh forRound); `stored` is the key of
   * their versions when the round read it at its start (canonicalStep). Without it, `policies()`.
   */
  roundPolicies?(tx: Queryable, stored?: string): Promise<readonly PartnerPolicy[]>;
  /**
   * Whether a reconciliation of `policy` should go on, asked in each slice's transaction (holding the
   * apply lock): false once a newer version is stored or the partner is suspended (policy-store
   * isActivePolicy). Without it, every slice runs.
   */
  reconcileWhile?(tx: Queryable, policy: PartnerPolicy): Promise<boolean>;
  /** After each committed slice of a reconciliation, outside its transaction (main.ts releases memory). */
  afterReconcileSlice?(): void;
  readonly now?: () => number;
}

export interface DistributionResult {
  readonly records: number;
  /** Redelivered messages, and revisions no newer than the one already applied. */
  readonly skipped: number;
  readonly feedRecords: number;
  /** Each feed record issued: its partner and operation, for metrics. */
  readonly issued: readonly { readonly partnerId: string; readonly op: FeedRecord["op"] }[];
  /** The reason code of each record dead-lettered (one that did not decode). */
  readonly rejectionReasons: readonly string[];
  /** The feed_outbox rows the round queued, for the relay once committed. */
  readonly queued: CommittedOutbox;
}

type CanonicalMessage = { readonly offset: string; readonly value: Buffer | null };

/** An entitled record whose category has no mapping in a partner's scheme, to be counted. */
type Unmappable = { readonly partnerId: string; readonly category: string };

/**
 * Plans one record's revision for every partner (planner.ts) and chains the changes; notes each
 * partner it is entitled to but cannot be mapped for. The ledger must hold what the record touches
 * (loadRound).
 */
export function distributeRecord(
  ledger: FeedLedger,
  writer: FeedWriter,
  record: CanonicalRecord,
  policies: readonly PartnerPolicy[],
  unmappable: Unmappable[],
): void {
  for (const { policy, changes, unmappable: unmapped } of planRecord(ledger, record, policies)) {
    for (const change of changes) writer.apply(policy, change);
    if (unmapped) unmappable.push({ partnerId: policy.partnerId, category: `${record.classification.uk}->${policy.scheme}` });
  }
}

/** The policies a round plans with: see DistributionDeps.roundPolicies. */
export function policiesForRound(deps: DistributionDeps, tx: Queryable, stored?: string): Promise<readonly PartnerPolicy[]> {
  return deps.roundPolicies ? deps.roundPolicies(tx, stored) : Promise.resolve(deps.policies());
}

/** distribution's exactly-once step over hashes.canonical.v1: the stored policy versions come with the round's first round trip. */
export function canonicalStep(deps: DistributionDeps): ExactlyOnceStep<CanonicalMessage, DistributionResult> {
  return {
    applyLock: DISTRIBUTION_APPLY_LOCK,
    readAtBegin: ACTIVE_POLICY_VERSIONS,
    apply: (tx, batches, begun) => distributeBatch(deps, tx, batches, activeVersionsOf(begun)),
  };
}

/**
 * distribution's part of the exactly-once step: the unapplied canonical records of a round's
 * batches. A record is keyed by its id, so all its revisions are in one partition, in order.
 * Two statements: one loads (locking the chain heads), one writes everything the round changed.
 * `storedPolicies`: the key of the stored policy versions, when the round read it at its start (canonicalStep).
 */
export async function distributeBatch(
  deps: DistributionDeps,
  tx: PoolClient,
  batches: readonly UnappliedBatch<CanonicalMessage>[],
  storedPolicies?: string,
): Promise<Applied<DistributionResult>> {
  const now = deps.now?.() ?? Date.now();
  const ledger = new FeedLedger();
  const policies = await policiesForRound(deps, tx, storedPolicies);
  const rejections: OutboxMessage[] = [];
  const rejectionReasons: string[] = [];
  const decoded = batches.flatMap((batch) => decodeBatch(deps, batch, rejections, rejectionReasons));
  // Loads the stored revision of every record in the batch, and all that planning them touches.
  const heads = await loadRound(
    tx,
    deps.codec,
    ledger,
    policies.map((p) => p.partnerId),
    decoded.map((b) => b.record),
  );
  const writer = new FeedWriter(heads, deps.codec, deps.topics, deps.hub, now, deps.feedSigning);
  const unmappable: Unmappable[] = [];
  let applied = 0;
  let skipped = batches.reduce((n, b) => n + b.redelivered, 0);
  const latest = new Map<string, { revision: number; bytes: Buffer }>();
  for (const { record, bytes } of decoded) {
    if ((ledger.knownRecord(record.recordId)?.revision ?? 0) >= record.revision) {
      skipped++;
      continue;
    }
    latest.set(record.recordId, { revision: record.revision, bytes });
    distributeRecord(ledger, writer, record, policies, unmappable);
    applied++;
  }
  const feed = writer.finish();
  const audit = auditOutbox(deps.codec, deps.topics, disclosureEvents(writer.issued, { kind: "canonical" }, now));
  const queued = await writeRound(tx, ledger, {
    records: latest,
    unmappable,
    heads: feed.heads,
    outbox: [...rejections, ...feed.outbox, ...audit],
    feedLog: feed.log,
    refs: feed.refs,
  });
  const issued = writer.issued.map((d) => ({ partnerId: d.record.partnerId, op: d.record.op }));
  return { result: { records: applied, skipped, feedRecords: writer.issued.length, issued, rejectionReasons, queued } };
}

/**
 * Decodes the batch's records; one that does not decode becomes a rejection for the dead-letter
 * topic (and its reason code goes to `reasons`, for metrics).
 */
function decodeBatch(
  deps: DistributionDeps,
  batch: UnappliedBatch<CanonicalMessage>,
  rejections: OutboxMessage[],
  reasons: string[],
): { record: CanonicalRecord; bytes: Buffer }[] {
  const decoded: { record: CanonicalRecord; bytes: Buffer }[] = [];
  for (const m of batch.messages) {
    const bytes = m.value ?? Buffer.alloc(0);
    try {
      decoded.push({ record: deps.codec.decode("CanonicalRecord", bytes).value, bytes });
    } catch (err) {
      const rejection = buildRejection(bytes, reasonOf(err), (err as Error).message, {
        service: SERVICE,
        channel: "kafka",
        sourceTopic: batch.topic,
        sourcePartition: batch.partition,
        sourceOffset: m.offset,
      });
      rejections.push({ topic: deps.topics.rejected, key: null, value: deps.codec.encode("Rejection", rejection), partition: null });
      reasons.push(rejection.reason);
    }
  }
  return decoded;
}

/** One batch of one canonical partition, exactly once, without Kafka (the consumer does the same). */
export async function processCanonicalBatch(
  deps: DistributionDeps,
  topic: string,
  partition: number,
  messages: readonly CanonicalMessage[],
): Promise<DistributionResult & { nextOffset: string | null }> {
  const outcome = await applyExactlyOnce(deps.pool, deps.consumerGroup, [{ topic, partition, messages }], canonicalStep(deps));
  return { ...outcome.result, nextOffset: outcome.partitions[0]?.nextOffset ?? null };
}

const ZERO_UUID = "00000000-0000-0000-0000-000000000000";
const RECONCILE_SLICE = 500;
const BACKFILL_PAGE = 1000;

/**
 * Brings one partner's feed in line with its current policy over every record distributed so
 * far: used when a partner is added or its policy changes. Runs in slices, each one transaction;
 * the last slice records the applied version and its "policy.applied" audit event. Counts in that
 * event cover this run: when a run is interrupted and started again, the slices committed before
 * were audited record by record but are not counted again.
 * A run stops, without marking its version applied, at the first slice that finds a newer version
 * stored (or the partner suspended): rounds already plan with the newer one, and a run of it, here or
 * in another instance, walks every record again; slices of the older one after it would undo it.
 */
export async function reconcilePartner(deps: DistributionDeps, policy: PartnerPolicy): Promise<number> {
  const totals = { records: 0, upserts: 0, removes: 0 };
  let after = ZERO_UUID;
  for (;;) {
    const slice = await inTransaction(deps.pool, async (tx) => {
      await tx.query("SELECT pg_advisory_xact_lock($1)", [DISTRIBUTION_APPLY_LOCK]);
      if (deps.reconcileWhile && !(await deps.reconcileWhile(tx, policy))) return null;
      return reconcileSlice(deps, tx, policy, after, totals);
    });
    if (slice === null) {
      deps.logger.info(
        { partnerId: policy.partnerId, version: policy.version, issued: totals.upserts + totals.removes },
        "reconciliation stopped: the partner's policy changed again",
      );
      return totals.upserts + totals.removes;
    }
    totals.records += slice.counts.records;
    totals.upserts += slice.counts.upserts;
    totals.removes += slice.counts.removes;
    deps.afterReconcileSlice?.();
    if (slice.last === null) return totals.upserts + totals.removes;
    after = slice.last;
  }
}

interface SliceCounts {
  readonly records: number;
  readonly upserts: number;
  readonly removes: number;
}

/** One slice of reconcilePartner; `last` is the recordId to continue after, null when done. */
async function reconcileSlice(
  deps: DistributionDeps,
  tx: PoolClient,
  policy: PartnerPolicy,
  after: string,
  before: SliceCounts,
): Promise<{ counts: SliceCounts; last: string | null }> {
  const rows = await distributedRecordsAfter(tx, after, RECONCILE_SLICE);
  const now = deps.now?.() ?? Date.now();
  const ledger = new FeedLedger();
  const records = rows.map((r) => deps.codec.decode("CanonicalRecord", r.body).value);
  for (const r of records) ledger.addRecord(r);
  const heads = await loadRound(tx, deps.codec, ledger, [policy.partnerId], records);
  const writer = new FeedWriter(heads, deps.codec, deps.topics, deps.hub, now, deps.feedSigning);
  const unmappable: Unmappable[] = [];
  // Every hash a record claims or owns in the feed is planned again: entries the policy no
  // longer grants (e.g. a narrowed policy) are removed, newly granted ones upserted.
  for (const r of records) distributeRecord(ledger, writer, r, [policy], unmappable);
  const feed = writer.finish();
  const audit = disclosureEvents(writer.issued, { kind: "policy", version: policy.version }, now);
  const counts = {
    records: records.length,
    upserts: writer.issued.filter((d) => d.record.op === "UPSERT").length,
    removes: writer.issued.filter((d) => d.record.op === "REMOVE").length,
  };
  const done = rows.length < RECONCILE_SLICE;
  if (done) {
    const previousVersion = await recordPolicyApplied(tx, policy.partnerId, policy.version);
    const run = {
      recordsEvaluated: before.records + counts.records,
      upserts: before.upserts + counts.upserts,
      removes: before.removes + counts.removes,
    };
    audit.push(policyAppliedEvent({ policy, previousVersion, ...run }, now));
  }
  await writeRound(tx, ledger, {
    unmappable,
    heads: feed.heads,
    outbox: [...feed.outbox, ...auditOutbox(deps.codec, deps.topics, audit)],
    feedLog: feed.log,
    refs: feed.refs,
  });
  return { counts, last: done ? null : (rows[rows.length - 1] as { record_id: string }).record_id };
}

/**
 * Once, on a hub database whose distributed records predate distributed_hashes: fills
 * distributed_hashes from the stored bodies, and forgets policy_applied so that the policy refresh
 * that follows re-plans every partner's feed per hash (repairing entries planned before).
 * Returns the claims written (0 when there was nothing to do).
 */
export async function backfillHashClaims(deps: Pick<DistributionDeps, "pool" | "codec" | "logger">): Promise<number> {
  return inTransaction(deps.pool, async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock($1)", [DISTRIBUTION_APPLY_LOCK]);
    if (!(await takePendingBackfill(tx, "hash_claims"))) return 0;
    let claimed = 0;
    let after = ZERO_UUID;
    for (;;) {
      const rows = await distributedRecordsAfter(tx, after, BACKFILL_PAGE);
      const claims = rows.flatMap((r) =>
        claimsOfRevision(deps.codec.decode("CanonicalRecord", r.body).value).map((h) => ({ recordId: r.record_id, ...splitHashKey(h) })),
      );
      await insertHashClaims(tx, claims);
      claimed += claims.length;
      if (rows.length < BACKFILL_PAGE) break;
      after = (rows[rows.length - 1] as { record_id: string }).record_id;
    }
    await forgetAppliedPolicies(tx);
    deps.logger.info({ claimed }, "hash claims backfilled; every partner feed will be reconciled");
    return claimed;
  });
}
