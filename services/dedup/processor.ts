/**
 * dedup's apply step for hashes.submitted.v1: verification happens first (verifyBatch, it needs
 * no lock), then, inside the exactly-once step's transaction (shared/exactly-once-step.ts, which
 * owns the lock, the stored offset and COMMIT), applyBatch applies the batch and writes the
 * changed canonical records, audit events and rejections to the outbox. A redelivered message is
 * left out by the step; a replayed submission id is rejected as a duplicate. Perceptual values that
 * become degenerate in a batch give every live record carrying them a new revision in the same
 * transaction, so distribution removes them from the feeds that held them.
 */
import { createHash } from "node:crypto";
import type { AvroCodec } from "../shared/wire/codec.ts";
import { auditBatches } from "../shared/audit.ts";
import type { AuditEventInput } from "../shared/audit.ts";
import { buildRejection } from "../shared/dead-letter.ts";
import { HashrelayError, reasonOf } from "../shared/errors.ts";
import type { ReasonCode } from "../shared/errors.ts";
import { verifySignedRecord } from "../shared/key-registry.ts";
import type { KeyLookup } from "../shared/key-registry.ts";
import type { Logger } from "../shared/logging.ts";
import type { Applied, PartitionBatch, UnappliedBatch } from "../shared/exactly-once-step.ts";
import type { Pool, PoolClient } from "../shared/postgres.ts";
import type { CanonicalRecord, Rejection, Submission } from "../shared/wire/records.ts";
import type { TopicNames } from "../shared/topics.ts";
import type { ConsensusPolicy } from "./consensus.ts";
import { applySubmission, finaliseChanges, hashKey, reviseCarriers, settleDegenerate } from "./engine.ts";
import type { Degeneracy, WorkingSet } from "./engine.ts";
import type { NearDuplicateLinker } from "./near-duplicate-linker.ts";
import { loadDegenerateStatus } from "./perceptual-store.ts";
import { writeRound } from "./round-write.ts";
import type { CommittedOutbox } from "../shared/outbox-relay.ts";
import type { OutboxMessage } from "./round-write.ts";
import { emptyWorkingSet, loadRecords, loadRound } from "./store.ts";

export const SERVICE = "dedup";

export interface DedupDeps {
  readonly pool: Pool;
  readonly codec: AvroCodec;
  readonly keys: KeyLookup;
  readonly policy: ConsensusPolicy;
  readonly topics: TopicNames;
  readonly consumerGroup: string;
  readonly nearDuplicates: NearDuplicateLinker;
  readonly logger: Logger;
  /** Submissions older than this are refused as stale (replays of old captures). */
  readonly maxSubmissionAgeMs: number;
  /** A perceptual value on this many distinct canonical records is degenerate (SHARED). */
  readonly degeneratePerceptualRecords: number;
  readonly now?: () => number;
  /** Test hook: called inside the transaction at the end of the apply step, before COMMIT. */
  readonly beforeCommit?: () => Promise<void>;
}

export interface InboundMessage {
  readonly offset: string;
  readonly value: Buffer | null;
}

export interface BatchResult {
  readonly applied: number;
  readonly rejected: number;
  /** The reason code of each rejection, for metrics. */
  readonly rejectionReasons: readonly string[];
  /** Messages below the stored offset: applied before, left out. */
  readonly skipped: number;
  readonly records: CanonicalRecord[];
  /** Perceptual values that became degenerate in this batch. */
  readonly degenerate: Degeneracy[];
  /** The outbox rows the round queued, for the relay once committed. */
  readonly queued: CommittedOutbox;
}

export type Verified =
  | { offset: number; ok: true; submission: Submission; digest: Buffer; original: Buffer }
  | {
      offset: number;
      ok: false;
      reason: ReasonCode;
      detail: string;
      original: Buffer;
      submissionId: string | null;
      agencyId: string | null;
    };

async function verify(deps: DedupDeps, msg: InboundMessage, now: number): Promise<Verified> {
  const offset = Number(msg.offset);
  const original = msg.value ?? Buffer.alloc(0);
  let submission: Submission | undefined;
  try {
    const decoded = deps.codec.decode("Submission", original);
    submission = decoded.value;
    // Staleness first: it bounds how far back a signing time may reach into a key's old window.
    if (now - submission.submittedAt > deps.maxSubmissionAgeMs) {
      throw new HashrelayError(
        "STALE_SUBMISSION",
        `submitted ${new Date(submission.submittedAt).toISOString()}, older than the replay window`,
      );
    }
    await verifySignedRecord("Submission", decoded.writer.type, submission, deps.keys, {
      ownerKind: "agency",
      ownerId: submission.agencyId,
      at: new Date(now),
      signedAt: new Date(submission.submittedAt),
    });
    return { offset, ok: true, submission, digest: createHash("sha256").update(original).digest(), original };
  } catch (err) {
    return {
      offset,
      ok: false,
      reason: reasonOf(err),
      detail: err instanceof HashrelayError ? err.detail : (err as Error).message,
      original,
      submissionId: submission?.submissionId ?? null,
      agencyId: submission?.agencyId ?? null,
    };
  }
}

/** Before the transaction (no lock needed): decodes every message and checks its signature. */
export async function verifyBatch(deps: DedupDeps, batch: PartitionBatch): Promise<Verified[]> {
  const now = deps.now?.() ?? Date.now();
  return Promise.all(batch.messages.map((m) => verify(deps, m, now)));
}

type Accepted = Extract<Verified, { ok: true }>;

/** What applying a batch's submissions to the working set decided, message by message. */
interface Decisions {
  readonly applied: { v: Accepted; recordId: string | null }[];
  readonly rejections: Rejection[];
}

/**
 * dedup's part of the exactly-once step (exactly-once-step.ts), inside its transaction: loads what
 * the round's batches touch, applies each submission (partition by partition, each in offset
 * order), writes the changed records, and queues canonical records, rejections and audit events in
 * the outbox.
 */
export async function applyBatch(
  deps: DedupDeps,
  tx: PoolClient,
  batches: readonly UnappliedBatch<Verified>[],
): Promise<Applied<BatchResult>> {
  const now = deps.now?.() ?? Date.now();
  const candidates = batches.flatMap((b) => b.messages.filter((v): v is Accepted => v.ok));
  const ws = emptyWorkingSet();
  // Replays: a submission id already applied changes nothing and is reported.
  const seen = candidates.length ? await loadCandidates(deps, tx, ws, candidates) : new Set<string>();

  const { applied, rejections } = decide(ws, batches, seen, now);

  const degenerate = await settleDegenerateValues(deps, tx, ws, now);
  await loadDegenerateStatus(tx, ws);
  await deps.nearDuplicates.link(tx, ws);
  await loadDegenerateStatus(tx, ws); // records the linker loaded and linked
  const records = finaliseChanges(ws, deps.policy, now);
  const { inserted, queued } = await writeRound(tx, ws, {
    applied: applied.map(({ v: { submission: s, digest }, recordId }) => ({
      submissionId: s.submissionId,
      agencyId: s.agencyId,
      keyId: s.keyId,
      digest,
      recordId,
    })),
    outbox: outboxMessages(deps, now, applied, records, rejections),
  });
  // Before COMMIT: a round rolled back leaves no row, which the next catch-up finds out.
  deps.nearDuplicates.wrote(inserted);
  await deps.beforeCommit?.();
  const skipped = batches.reduce((n, b) => n + b.redelivered, 0);
  const rejectionReasons = rejections.map((r) => r.reason);
  return { result: { applied: applied.length, rejected: rejections.length, rejectionReasons, skipped, records, degenerate, queued } };
}

/**
 * The round's load (store.ts, one statement) for the accepted submissions, with the near-duplicate
 * indexes' catch-up read alongside; returns the submission ids applied before. A round without an
 * accepted submission loads nothing and leaves the catch-up to the next round.
 */
async function loadCandidates(deps: DedupDeps, tx: PoolClient, ws: WorkingSet, candidates: readonly Accepted[]): Promise<Set<string>> {
  const linker = deps.nearDuplicates;
  const catchUp = await linker.catchUpFrom(tx);
  const loaded = await loadRound(tx, ws, {
    submissionIds: candidates.map((c) => c.submission.submissionId),
    hashes: candidates.flatMap((c) => c.submission.hashes),
    // A RETRACT whose exact hashes the hub does not hold reaches the retracting agency's records
    // carrying its perceptual values (engine.ts): they are loaded for every RETRACT, so the outcome
    // never depends on what else the batch happened to load.
    retractions: candidates
      .map((c) => c.submission)
      .filter((s) => s.op === "RETRACT")
      .flatMap((s) => s.hashes.map((hash) => ({ agencyId: s.agencyId, hash }))),
    catchUp,
  });
  await linker.caughtUp(tx, catchUp, loaded.catchUp);
  return loaded.applied;
}

/**
 * Decides which of the batch's perceptual values are degenerate now; for each that became SHARED,
 * loads every record carrying it and gives the live ones a new revision.
 */
async function settleDegenerateValues(deps: DedupDeps, tx: PoolClient, ws: WorkingSet, now: number): Promise<Degeneracy[]> {
  const fresh = settleDegenerate(ws, deps.degeneratePerceptualRecords, now);
  const shared = fresh.filter((d) => d.reason === "SHARED");
  if (shared.length) {
    await loadRecords(tx, ws, { carrying: shared });
    reviseCarriers(ws, new Set(shared.map(hashKey)));
  }
  return fresh;
}

/**
 * Applies each verified submission to the working set, partition by partition in offset order;
 * refusals become rejections.
 */
function decide(ws: WorkingSet, batches: readonly UnappliedBatch<Verified>[], seen: Set<string>, now: number): Decisions {
  const applied: Decisions["applied"] = [];
  const rejections: Rejection[] = [];
  for (const batch of batches) decidePartition(ws, batch, seen, now, applied, rejections);
  return { applied, rejections };
}

function decidePartition(
  ws: WorkingSet,
  batch: UnappliedBatch<Verified>,
  seen: Set<string>,
  now: number,
  applied: Decisions["applied"],
  rejections: Rejection[],
): void {
  const reject = (v: Verified, reason: ReasonCode, detail: string, ids: { submissionId: string | null; agencyId: string | null }) =>
    rejections.push(
      buildRejection(v.original, reason, detail, {
        service: SERVICE,
        channel: "kafka",
        ...ids,
        sourceTopic: batch.topic,
        sourcePartition: batch.partition,
        sourceOffset: String(v.offset),
      }),
    );
  for (const v of batch.messages) {
    if (!v.ok) {
      reject(v, v.reason, v.detail, { submissionId: v.submissionId, agencyId: v.agencyId });
      continue;
    }
    const sub = v.submission;
    const ids = { submissionId: sub.submissionId, agencyId: sub.agencyId };
    if (seen.has(sub.submissionId)) {
      reject(v, "DUPLICATE_SUBMISSION", `submission ${sub.submissionId} was already applied; replay ignored`, ids);
      continue;
    }
    const outcome = applySubmission(ws, sub, now);
    if (outcome.kind === "rejected") {
      reject(v, outcome.reason, outcome.detail, ids);
      continue;
    }
    seen.add(sub.submissionId);
    applied.push({ v, recordId: outcome.recordIds[0] ?? null });
  }
}

/**
 * The batch's outbox: changed canonical records, rejections, then the audit events of all three,
 * carried by as few audit.batch events as fit (shared/audit.ts): one event per submission and per
 * record was two outbox rows and Kafka messages per submission besides the canonical record.
 */
function outboxMessages(
  deps: DedupDeps,
  now: number,
  applied: Decisions["applied"],
  records: readonly CanonicalRecord[],
  rejections: readonly Rejection[],
): OutboxMessage[] {
  const events: AuditEventInput[] = [
    ...applied.map(({ v: { submission: s }, recordId }) => ({
      service: SERVICE,
      actor: s.agencyId,
      action: "submission.applied",
      subjectKind: "submission",
      subjectId: s.submissionId,
      detail: { recordId: recordId ?? "", op: s.op },
    })),
    ...records.map((r) => ({
      service: SERVICE,
      actor: SERVICE,
      action: recordAction(r),
      subjectKind: "record",
      subjectId: r.recordId,
      revision: r.revision,
      detail: { gradingStatus: r.gradingStatus, ...(r.mergedInto ? { mergedInto: r.mergedInto } : {}) },
    })),
    ...rejections.map((r) => ({
      service: SERVICE,
      actor: r.agencyId ?? "unknown",
      action: "submission.rejected",
      subjectKind: "submission",
      subjectId: r.submissionId ?? r.rejectionId,
      detail: { reason: r.reason },
    })),
  ];
  const audit = auditBatches(SERVICE, deps.consumerGroup, now, events);
  return [
    ...records.map((r) => ({ topic: deps.topics.canonical, key: r.recordId, value: deps.codec.encode("CanonicalRecord", r) })),
    ...rejections.map((r) => ({ topic: deps.topics.rejected, key: r.agencyId, value: deps.codec.encode("Rejection", r) })),
    ...audit.map((e) => ({ topic: deps.topics.audit, key: e.subjectId, value: deps.codec.encode("AuditEvent", e) })),
  ];
}

function recordAction(r: CanonicalRecord): string {
  return r.mergedInto ? "record.merged" : r.deleted ? "record.withdrawn" : r.revision === 1 ? "record.created" : "record.revised";
}
