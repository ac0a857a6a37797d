/**
 * The partner's lookup endpoint: is this hash in our list, and in which category. The sink's
 * operational endpoints (/metrics, /healthz, /readyz) answer beside it. And the partner's way to
 * answer back: POST /v1/feedback signs and sends a PartnerFeedback (feedback.ts) about a recordRef
 * a lookup returned. Like the lookups it serves the partner's own systems only (it listens on
 * PARTNER_HTTP_HOST, loopback by default).
 */
import Fastify from "fastify";
import type { FastifyBaseLogger, FastifyInstance } from "fastify";
import { HashrelayError } from "../shared/errors.ts";
import type { ReasonCode } from "../shared/errors.ts";
import type { Logger } from "../shared/logging.ts";
import { addOpsRoutes } from "../shared/ops-http.ts";
import type { OpsEndpoints } from "../shared/ops-http.ts";
import type { Pool } from "../shared/postgres.ts";
import { HASH_ALGORITHM_NAMES, canonicalCase, isHashAlg } from "../shared/wire/hash-algorithms.ts";
import { FeedbackKindValues } from "../shared/wire/records.ts";
import type { FeedbackKind } from "../shared/wire/records.ts";
import { FeedbackNotSentError, sendFeedback } from "./feedback.ts";
import type { FeedbackRequest, FeedbackSender } from "./feedback.ts";

const FEEDBACK_STATUS: Partial<Record<ReasonCode, number>> = { INVALID_FIELD: 400, UNKNOWN_RECORD_REF: 404 };

/** The JSON body's fields, each of the type the record takes; anything else is refused. */
function feedbackRequestOf(body: unknown): FeedbackRequest {
  const b = (body ?? {}) as Record<string, unknown>;
  const text = (k: string) => (b[k] === undefined || b[k] === null ? null : typeof b[k] === "string" ? b[k] : bad(k, "a string"));
  function bad(k: string, what: string): never {
    throw new HashrelayError("INVALID_FIELD", `${k} must be ${what}`);
  }
  const unknown = Object.keys(b).filter(
    (k) => !["recordRef", "kind", "matchCount", "timeBucket", "reasonCode", "freeText", "feedbackId"].includes(k),
  );
  if (unknown.length) bad(unknown[0] as string, "left out (not a feedback field)");
  const kind = b["kind"];
  if (typeof kind !== "string" || !(FeedbackKindValues as readonly string[]).includes(kind))
    bad("kind", `one of ${FeedbackKindValues.join(", ")}`);
  const count = b["matchCount"];
  if (count !== undefined && count !== null && typeof count !== "number") bad("matchCount", "a number");
  const feedbackId = text("feedbackId");
  return {
    recordRef: text("recordRef") ?? bad("recordRef", "given"),
    kind: kind as FeedbackKind,
    matchCount: (count as number | null | undefined) ?? null,
    timeBucket: text("timeBucket"),
    reasonCode: text("reasonCode"),
    freeText: text("freeText"),
    ...(feedbackId ? { feedbackId } : {}),
  };
}

export function buildLookupApi(pool: Pool, logger: Logger, ops: OpsEndpoints, feedback: FeedbackSender | null = null): FastifyInstance {
  const app: FastifyInstance = Fastify({ loggerInstance: logger as FastifyBaseLogger });
  addOpsRoutes(app, ops);
  app.post("/v1/feedback", async (req, reply) => {
    if (!feedback) {
      return reply
        .code(503)
        .send({ reason: "CONFIG_INVALID", error: "no feedback key: set PARTNER_FEEDBACK_KEY_ID and PARTNER_FEEDBACK_KEY_FILE" });
    }
    try {
      const sent = await sendFeedback(pool, feedback, feedbackRequestOf(req.body));
      req.log.info({ feedbackId: sent.feedbackId, status: sent.status }, "feedback sent to the hub");
      return reply.code(sent.status === "already-sent" ? 200 : 202).send(sent);
    } catch (err) {
      if (err instanceof FeedbackNotSentError) {
        req.log.warn({ feedbackId: err.feedbackId, err: err.cause }, "feedback stored but not sent");
        return reply.code(503).send({ reason: "INTERNAL", feedbackId: err.feedbackId, error: err.message });
      }
      if (!(err instanceof HashrelayError) || !FEEDBACK_STATUS[err.reason]) throw err;
      return reply.code(FEEDBACK_STATUS[err.reason] as number).send({ reason: err.reason, error: err.detail });
    }
  });
  app.get("/v1/hashes/:alg/:value", async (req, reply) => {
    const { alg, value } = req.params as { alg: string; value: string };
    if (!isHashAlg(alg)) {
      return reply.code(400).send({ reason: "UNSUPPORTED_ALGORITHM", error: `alg must be one of ${HASH_ALGORITHM_NAMES.join(", ")}` });
    }
    const normalised = canonicalCase(alg, value);
    const { rows } = await pool.query<{
      category: string;
      content_type: string;
      record_ref: string;
      revision: number;
      extra: Record<string, string>;
    }>("SELECT category, content_type, record_ref, revision, extra FROM partner_hashes WHERE alg = $1 AND value = $2 AND NOT removed", [
      alg,
      normalised,
    ]);
    const row = rows[0];
    if (!row) return reply.code(404).send({ reason: "NOT_FOUND", error: "hash not in this partner's list" });
    return {
      alg,
      value: normalised,
      category: row.category,
      contentType: row.content_type,
      recordRef: row.record_ref,
      revision: row.revision,
      extra: row.extra,
    };
  });
  return app;
}
