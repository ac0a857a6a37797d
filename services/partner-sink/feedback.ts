/**
 * The partner's side of feedback: signs a PartnerFeedback with the partner's own key, keeps the
 * exact bytes in its database (sent_feedback) and produces them to feedback.<partner>.v1, the one
 * topic its Kafka principal may write. The feedbackId is the idempotency key: asking again with
 * one already sent changes nothing, and one whose send failed is re-sent byte for byte, so the hub
 * never sees two different records under one id. The hub checks everything again; the checks here
 * (content rules, a recordRef this partner actually received) only spare the partner a refusal.
 */
import { randomUUID } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { z } from "zod";
import { ConfigError, HashrelayError, ValidationError } from "../shared/errors.ts";
import type { RecordProducer } from "../shared/kafka.ts";
import { connectedProducer, serviceKafka } from "../shared/lifecycle.ts";
import type { Logger } from "../shared/logging.ts";
import { topicNames } from "../shared/topics.ts";
import type { KafkaConnectionSettings } from "../shared/kafka.ts";
import type { Queryable } from "../shared/postgres.ts";
import type { AvroCodec } from "../shared/wire/codec.ts";
import { signFeedback, validateFeedback } from "../shared/wire/feedback.ts";
import { privateKeyFromPem } from "../shared/wire/signing.ts";
import type { UnsignedFeedback } from "../shared/wire/feedback.ts";
import type { FeedbackKind } from "../shared/wire/records.ts";

/** What the partner says; the rest (ids, time, key, signature) is filled in here. */
export interface FeedbackRequest {
  readonly recordRef: string;
  readonly kind: FeedbackKind;
  readonly matchCount?: number | null;
  readonly timeBucket?: string | null;
  readonly reasonCode?: string | null;
  readonly freeText?: string | null;
  /** To retry a send safely, give the id of the first attempt; a fresh UUID otherwise. */
  readonly feedbackId?: string;
}

export interface FeedbackSender {
  readonly partnerId: string;
  readonly keyId: string;
  readonly privateKey: KeyObject;
  readonly codec: AvroCodec;
  /** feedback.<partner>.v1 */
  readonly topic: string;
  readonly producer: RecordProducer;
  readonly now?: () => number;
}

export interface FeedbackSent {
  readonly feedbackId: string;
  /** sent: signed and produced now; resent: stored bytes of an earlier failed send; already-sent: nothing done. */
  readonly status: "sent" | "resent" | "already-sent";
}

interface SentRow {
  body: Buffer;
  record_ref: string;
  sent_at: Date | null;
}

/** Signs, stores and produces one feedback record (see the file comment for retries). */
export async function sendFeedback(db: Queryable, sender: FeedbackSender, request: FeedbackRequest): Promise<FeedbackSent> {
  const feedbackId = request.feedbackId ?? randomUUID();
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(feedbackId)) {
    throw new ValidationError("INVALID_FIELD", "feedbackId must be a lower-case UUID");
  }
  const { rows } = await db.query<SentRow>("SELECT body, record_ref, sent_at FROM sent_feedback WHERE feedback_id = $1", [feedbackId]);
  const prior = rows[0];
  if (prior) {
    if (prior.record_ref !== request.recordRef) {
      throw new HashrelayError(
        "INVALID_FIELD",
        `feedbackId ${feedbackId} was already used for another recordRef; leave it out for a new one`,
      );
    }
    if (prior.sent_at) return { feedbackId, status: "already-sent" };
    await produce(db, sender, feedbackId, request.recordRef, prior.body);
    return { feedbackId, status: "resent" };
  }
  const held = await db.query("SELECT 1 FROM partner_hashes WHERE record_ref = $1 LIMIT 1", [request.recordRef]);
  if (!held.rowCount) {
    throw new HashrelayError("UNKNOWN_RECORD_REF", `recordRef ${request.recordRef} is not in this partner's feed; give one from a lookup`);
  }
  const unsigned: UnsignedFeedback = {
    feedbackId,
    partnerId: sender.partnerId,
    recordRef: request.recordRef,
    kind: request.kind,
    matchCount: request.matchCount ?? null,
    timeBucket: request.timeBucket ?? null,
    reasonCode: request.reasonCode ?? null,
    freeText: request.freeText ?? null,
    sentAt: sender.now?.() ?? Date.now(),
    keyId: sender.keyId,
  };
  validateFeedback(unsigned);
  const body = sender.codec.encode(
    "PartnerFeedback",
    signFeedback(sender.codec.schema("PartnerFeedback").type, unsigned, sender.privateKey),
  );
  await db.query("INSERT INTO sent_feedback (feedback_id, record_ref, kind, body) VALUES ($1, $2, $3, $4)", [
    feedbackId,
    request.recordRef,
    request.kind,
    body,
  ]);
  await produce(db, sender, feedbackId, request.recordRef, body);
  return { feedbackId, status: "sent" };
}

/** The feedback is signed and stored but Kafka did not take it: send again with this feedbackId. */
export class FeedbackNotSentError extends Error {
  readonly feedbackId: string;
  constructor(feedbackId: string, cause: unknown) {
    super(`feedback ${feedbackId} is stored but was not sent (${(cause as Error).message}); send it again with this feedbackId`, { cause });
    this.name = "FeedbackNotSentError";
    this.feedbackId = feedbackId;
  }
}

async function produce(db: Queryable, sender: FeedbackSender, feedbackId: string, recordRef: string, body: Buffer): Promise<void> {
  try {
    // Keyed by recordRef: one record's feedback stays in order on one partition.
    await sender.producer.send({ topic: sender.topic, acks: -1, messages: [{ key: recordRef, value: body }] });
  } catch (err) {
    throw new FeedbackNotSentError(feedbackId, err);
  }
  await db.query("UPDATE sent_feedback SET sent_at = now() WHERE feedback_id = $1", [feedbackId]);
}

/** The feedback this partner has sent, newest first. */
export async function listSentFeedback(
  db: Queryable,
  limit: number,
): Promise<{ feedbackId: string; recordRef: string; kind: string; createdAt: Date; sentAt: Date | null }[]> {
  const { rows } = await db.query<{ feedback_id: string; record_ref: string; kind: string; created_at: Date; sent_at: Date | null }>(
    "SELECT feedback_id, record_ref, kind, created_at, sent_at FROM sent_feedback ORDER BY created_at DESC LIMIT $1",
    [limit],
  );
  return rows.map((r) => ({
    feedbackId: r.feedback_id,
    recordRef: r.record_ref,
    kind: r.kind,
    createdAt: r.created_at,
    sentAt: r.sent_at,
  }));
}

/** The partner's feedback key (registered at the hub with `hashrelay keys register --owner-kind partner`). */
export const feedbackConfigShape = {
  PARTNER_FEEDBACK_KEY_ID: z.string().min(1).optional(),
  /** PKCS#8 PEM of the partner's Ed25519 feedback key (mode 0600; never logged). */
  PARTNER_FEEDBACK_KEY_FILE: z.string().min(1).optional(),
};

export interface FeedbackSenderConfig extends KafkaConnectionSettings {
  readonly PARTNER_ID: string;
  readonly TOPIC_NAMESPACE: string;
  readonly KAFKA_CLIENT_ID?: string | undefined;
  readonly PARTNER_FEEDBACK_KEY_ID?: string | undefined;
  readonly PARTNER_FEEDBACK_KEY_FILE?: string | undefined;
}

/** A connected sender, or null when no feedback key is configured; disconnect its producer when done. */
export async function openFeedbackSender(config: FeedbackSenderConfig, codec: AvroCodec, logger: Logger): Promise<FeedbackSender | null> {
  if (!config.PARTNER_FEEDBACK_KEY_ID && !config.PARTNER_FEEDBACK_KEY_FILE) return null;
  if (!config.PARTNER_FEEDBACK_KEY_ID || !config.PARTNER_FEEDBACK_KEY_FILE) {
    throw new ConfigError("PARTNER_FEEDBACK_KEY_ID and PARTNER_FEEDBACK_KEY_FILE must be set together");
  }
  let pem: string;
  try {
    pem = readFileSync(config.PARTNER_FEEDBACK_KEY_FILE, "utf8");
  } catch (err) {
    throw new ConfigError(`PARTNER_FEEDBACK_KEY_FILE ${config.PARTNER_FEEDBACK_KEY_FILE} cannot be read: ${(err as Error).message}`);
  }
  const producer = await connectedProducer(serviceKafka(config, `partner-feedback-${config.PARTNER_ID}`, logger));
  return {
    partnerId: config.PARTNER_ID,
    keyId: config.PARTNER_FEEDBACK_KEY_ID,
    privateKey: privateKeyFromPem(pem),
    codec,
    topic: topicNames(config.TOPIC_NAMESPACE).feedback(config.PARTNER_ID),
    producer,
  };
}
