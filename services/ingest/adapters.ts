/** Network adapters of the ingest core: the Kafka sink and the PostgreSQL ledger. */
import type { RecordProducer } from "../shared/kafka.ts";
import type { AvroCodec } from "../shared/wire/codec.ts";
import type { Queryable } from "../shared/postgres.ts";
import type { TopicNames } from "../shared/topics.ts";
import type { IntakeSink, SubmissionLedger } from "./intake.ts";
import type { RequestReplayGuard } from "./request-auth.ts";

/** Publishes a batch with acks from all in-sync replicas; resolves once Kafka holds all of it. */
export function kafkaIntakeSink(producer: RecordProducer, codec: AvroCodec, topics: TopicNames): IntakeSink {
  return {
    async publish({ accepted, rejected, audit }) {
      const topicMessages = [
        { topic: topics.submitted, messages: accepted.map((a) => ({ key: a.key, value: a.bytes })) },
        {
          topic: topics.rejected,
          messages: rejected.map((r) => ({ key: r.agencyId, value: codec.encode("Rejection", r) })),
        },
        { topic: topics.audit, messages: audit.map((e) => ({ key: e.subjectId, value: codec.encode("AuditEvent", e) })) },
      ].filter((t) => t.messages.length > 0);
      if (topicMessages.length === 0) return;
      await producer.sendBatch({ acks: -1, topicMessages });
    },
  };
}

export function pgSubmissionLedger(db: Queryable): SubmissionLedger {
  return {
    async lookup(ids) {
      if (ids.length === 0) return new Map();
      const { rows } = await db.query<{ submission_id: string; digest: Buffer }>(
        "SELECT submission_id, digest FROM ingest_submissions WHERE submission_id = ANY($1::text[])",
        [ids],
      );
      return new Map(rows.map((r) => [r.submission_id, r.digest]));
    },
    async record(entries) {
      if (entries.length === 0) return;
      await db.query(
        `INSERT INTO ingest_submissions (submission_id, agency_id, digest)
         SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[])
         ON CONFLICT (submission_id) DO NOTHING`,
        [entries.map((e) => e.submissionId), entries.map((e) => e.agencyId), entries.map((e) => e.digest)],
      );
    },
  };
}

/**
 * Request signatures seen, in PostgreSQL so that every ingest instance refuses a replay; rows are
 * dropped once their timestamp can no longer pass the clock-skew check anyway.
 */
export function pgRequestReplayGuard(db: Queryable, purgeEveryMs = 60_000): RequestReplayGuard {
  let lastPurge = 0;
  return {
    async firstUse(signatureDigest, forgetAfter) {
      if (Date.now() - lastPurge > purgeEveryMs) {
        lastPurge = Date.now();
        await db.query("DELETE FROM ingest_request_signatures WHERE forget_after < now()");
      }
      const { rowCount } = await db.query(
        "INSERT INTO ingest_request_signatures (signature_digest, forget_after) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        [signatureDigest, forgetAfter],
      );
      return rowCount === 1;
    },
  };
}
