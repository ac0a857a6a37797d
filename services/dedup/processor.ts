/**
 * One batch of hashes.submitted.v1, applied exactly once: verification happens first (it needs
 * no lock), then a single PostgreSQL transaction applies the batch, writes the changed canonical
 * records, audit events and rejections to the outbox, and moves the stored offset. Kafka's own
 * committed offset is only a hint; the stored one decides what was applied, so a redelivered
 * message is skipped and a crash anywhere leaves either all of the batch or none of it.
 */
import { createHash, randomUUID } from "node:crypto";
import type { AvroCodec } from "../shared/wire/codec.ts";
import { buildRejection } from "../shared/dead-letter.ts";
import { HashrelayError, reasonOf } from "../shared/errors.ts";
import type { ReasonCode } from "../shared/errors.ts";
import { verifySignedRecord } from "../shared/key-registry.ts";
import type { KeyLookup } from "../shared/key-registry.ts";
import type { Logger } from "../shared/logging.ts";
import { lockStoredOffset, storeNextOffset } from "../shared/exactly-once-consumer.ts";
import { inTransaction } from "../shared/postgres.ts";
import type { Pool } from "../shared/postgres.ts";
import type { AuditEvent, CanonicalRecord, Rejection, Submission } from "../shared/wire/records.ts";
import type { TopicNames } from "../shared/topics.ts";
import type { ConsensusPolicy } from "./consensus.ts";
import { applySubmission, finaliseChanges } from "./engine.ts";
import type { NearDuplicateLinker } from "./near-duplicate-linker.ts";
import { emptyWorkingSet, enqueueOutbox, loadByHashes, writeChanges } from "./store.ts";
import type { OutboxMessage } from "./store.ts";

export const SERVICE = "dedup";
/** Serialises the apply step of all dedup instances on one hub database. */
const APPLY_LOCK = 7431002;

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
  readonly now?: () => number;
  /** Test hook: called inside the transaction just before COMMIT. */
  readonly beforeCommit?: () => Promise<void>;
}

export interface InboundMessage {
  readonly offset: string;
  readonly value: Buffer | null;
}

export interface BatchResult {
  readonly applied: number;
  readonly rejected: number;
  readonly skipped: number;
  readonly records: CanonicalRecord[];
  /** Next offset to consume, now durably stored. */
  readonly nextOffset: string | null;
}

type Verified =
  | { offset: number; ok: true; submission: Submission; digest: Buffer; original: Buffer }
  | { offset: number; ok: false; reason: ReasonCode; detail: string; original: Buffer; submissionId: string | null; agencyId: string | null };

async function verify(deps: DedupDeps, msg: InboundMessage, now: number): Promise<Verified> {
  const offset = Number(msg.offset);
  const original = msg.value ?? Buffer.alloc(0);
  let submission: Submission | undefined;
  try {
    const decoded = deps.codec.decode("Submission", original);
    submission = decoded.value;
    // Staleness first: it bounds how far back a signing time may reach into a key's old window.
    if (now - submission.submittedAt > deps.maxSubmissionAgeMs) {
      throw new HashrelayError("STALE_SUBMISSION", `submitted ${new Date(submission.submittedAt).toISOString()}, older than the replay window`);
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

export async function processBatch(deps: DedupDeps, topic: string, partition: number, messages: readonly InboundMessage[]): Promise<BatchResult> {
  const now = deps.now?.() ?? Date.now();
  const verified = await Promise.all(messages.map((m) => verify(deps, m, now)));
  if (verified.length === 0) return { applied: 0, rejected: 0, skipped: 0, records: [], nextOffset: null };

  return inTransaction(deps.pool, async (client) => {
    await client.query("SELECT pg_advisory_xact_lock($1)", [APPLY_LOCK]);
    const next = await lockStoredOffset(client, deps.consumerGroup, topic, partition);
    const fresh = verified.filter((v) => v.offset >= next);
    const skipped = verified.length - fresh.length;
    const lastOffset = Math.max(next - 1, ...verified.map((v) => v.offset));

    const rejections: Rejection[] = [];
    const reject = (v: Verified, reason: ReasonCode, detail: string, ids: { submissionId: string | null; agencyId: string | null }) =>
      rejections.push(
        buildRejection(v.original, reason, detail, {
          service: SERVICE,
          channel: "kafka",
          ...ids,
          sourceTopic: topic,
          sourcePartition: partition,
          sourceOffset: String(v.offset),
        }),
      );

    // Replays: a submission id already applied changes nothing and is reported.
    const candidates = fresh.filter((v): v is Extract<Verified, { ok: true }> => v.ok);
    const { rows: seenRows } = await client.query<{ submission_id: string }>(
      "SELECT submission_id FROM applied_submissions WHERE submission_id = ANY($1::text[])",
      [candidates.map((c) => c.submission.submissionId)],
    );
    const seen = new Set(seenRows.map((r) => r.submission_id));

    const ws = emptyWorkingSet();
    await loadByHashes(client, ws, candidates.flatMap((c) => c.submission.hashes));
    await deps.nearDuplicates.catchUp(client);

    const applied: { v: Extract<Verified, { ok: true }>; recordId: string | null }[] = [];
    for (const v of fresh) {
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

    await deps.nearDuplicates.link(client, ws);
    const records = finaliseChanges(ws, deps.policy, now);
    await writeChanges(client, ws);

    if (applied.length) {
      await client.query(
        `INSERT INTO applied_submissions (submission_id, agency_id, key_id, digest, record_id)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::uuid[])`,
        [
          applied.map((a) => a.v.submission.submissionId),
          applied.map((a) => a.v.submission.agencyId),
          applied.map((a) => a.v.submission.keyId),
          applied.map((a) => a.v.digest),
          applied.map((a) => a.recordId),
        ],
      );
    }

    const audit: AuditEvent[] = [
      ...applied.map((a) => auditEvent(now, a.v.submission.agencyId, `submission.applied`, "submission", a.v.submission.submissionId, null, {
        recordId: a.recordId ?? "",
        op: a.v.submission.op,
      })),
      ...records.map((r) =>
        auditEvent(now, SERVICE, r.mergedInto ? "record.merged" : r.deleted ? "record.withdrawn" : r.revision === 1 ? "record.created" : "record.revised", "record", r.recordId, r.revision, {
          gradingStatus: r.gradingStatus,
          ...(r.mergedInto ? { mergedInto: r.mergedInto } : {}),
        }),
      ),
      ...rejections.map((r) => auditEvent(now, r.agencyId ?? "unknown", "submission.rejected", "submission", r.submissionId ?? r.rejectionId, null, { reason: r.reason })),
    ];
    const outbox: OutboxMessage[] = [
      ...records.map((r) => ({ topic: deps.topics.canonical, key: r.recordId, value: deps.codec.encode("CanonicalRecord", r) })),
      ...rejections.map((r) => ({ topic: deps.topics.rejected, key: r.agencyId, value: deps.codec.encode("Rejection", r) })),
      ...audit.map((e) => ({ topic: deps.topics.audit, key: e.subjectId, value: deps.codec.encode("AuditEvent", e) })),
    ];
    await enqueueOutbox(client, outbox);
    await storeNextOffset(client, deps.consumerGroup, topic, partition, lastOffset + 1);
    await deps.beforeCommit?.();
    return { applied: applied.length, rejected: rejections.length, skipped, records, nextOffset: String(lastOffset + 1) };
  });
}

function auditEvent(
  at: number,
  actor: string,
  action: string,
  subjectKind: string,
  subjectId: string,
  revision: number | null,
  detail: Record<string, string>,
): AuditEvent {
  return { eventId: randomUUID(), at, service: SERVICE, actor, action, subjectKind, subjectId, revision, detail };
}
