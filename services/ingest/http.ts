/**
 * The ingest HTTP API (fastify). Thin: authenticate, check the media type, parse, hand items to
 * the intake core, answer with per-item outcomes. Bodies stay raw bytes so the request signature
 * and the dead-letter copies are over exactly what the agency sent. Authentication comes before
 * any look at the body or its Content-Type, so an unauthenticated caller learns nothing about them.
 */
import Fastify, { LogController } from "fastify";
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { HashrelayError, SignatureError } from "../shared/errors.ts";
import type { ReasonCode } from "../shared/errors.ts";
import type { KeyLookup } from "../shared/key-registry.ts";
import type { Logger } from "../shared/logging.ts";
import { SIGNATURE_REASONS } from "../shared/metrics.ts";
import { addOpsRoutes } from "../shared/ops-http.ts";
import { parseSubmissionBatch } from "../shared/wire/submission-json.ts";
import type { ImportService } from "./imports.ts";
import { addToReceipt, emptyReceipt } from "../shared/wire/ingest-api.ts";
import { admitBatch } from "./intake.ts";
import type { IntakeDeps, IntakeItem } from "./intake.ts";
import { checkMediaType } from "./media-type.ts";
import type { BodyRoute } from "./media-type.ts";
import type { IngestMetrics } from "./metrics.ts";
import { OPENAPI_DOCUMENT } from "./openapi.ts";
import { authenticateRequest, requestReplayed, verifyRequest } from "./request-auth.ts";
import type { AuthenticatedAgency, ReplayClaim, RequestReplayGuard } from "./request-auth.ts";

export interface IngestApiDeps {
  readonly intake: IntakeDeps;
  readonly keys: KeyLookup;
  /** Refuses a signed request seen before (absent: no replay protection, e.g. in unit tests). */
  readonly replay?: RequestReplayGuard;
  readonly imports: ImportService;
  readonly metrics: IngestMetrics;
  readonly logger: Logger;
  readonly bodyLimitBytes: number;
  readonly maxItemsPerRequest: number;
  /** Resolves when Kafka and PostgreSQL are reachable; rejects with the reason otherwise. */
  readonly ready: () => Promise<void>;
}

declare module "fastify" {
  interface FastifyRequest {
    agency?: AuthenticatedAgency;
    /** A submission request's replay check, made by the ledger's look-up (admitBatch). */
    replayClaim?: ReplayClaim;
  }
}

function sendError(reply: FastifyReply, status: number, reason: ReasonCode, error: string): FastifyReply {
  return reply.code(status).send({ reason, error });
}

const STATUS_BY_REASON: Partial<Record<ReasonCode, number>> = {
  UNAUTHENTICATED: 401,
  UNKNOWN_KEY: 401,
  KEY_REVOKED: 401,
  KEY_EXPIRED: 401,
  KEY_NOT_YET_VALID: 401,
  KEY_OWNER_MISMATCH: 401,
  BAD_SIGNATURE: 401,
  REQUEST_REPLAYED: 401,
  NOT_FOUND: 404,
  BODY_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  INVALID_FIELD: 400,
  MALFORMED_JSON: 400,
};

export function buildIngestApi(deps: IngestApiDeps): FastifyInstance {
  const app: FastifyInstance = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    bodyLimit: deps.bodyLimitBytes,
    // Each submission is logged once by the route, with its agency and record ids; fastify's own
    // per-request lines would double the volume and carry no domain ids.
    logController: new LogController({ disableRequestLogging: true }),
  });
  // Body parsing, hooks and the error handler first: the routes after them run inside them.
  keepRawBodies(app);
  addRequestMetrics(app, deps);
  addErrorHandler(app, deps);
  addAgencyAuthentication(app, deps);
  addOperationalRoutes(app, deps);
  addSubmissionRoutes(app, deps);
  addImportRoutes(app, deps);
  return app;
}

/** Keep every body as the exact bytes received. */
function keepRawBodies(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "buffer" }, (_req, body, done) => done(null, body));
}

function addRequestMetrics(app: FastifyInstance, deps: IngestApiDeps): void {
  app.addHook("onResponse", async (req, reply) => {
    deps.metrics.requestSeconds.labels(req.routeOptions.url ?? "unknown", String(reply.statusCode)).observe(reply.elapsedTime / 1000);
  });
}

/** Maps every refusal to its transport status through STATUS_BY_REASON; anything else is the hub's fault (503). */
function addErrorHandler(app: FastifyInstance, deps: IngestApiDeps): void {
  app.setErrorHandler((err: Error & { code?: string; statusCode?: number }, req, reply) => {
    if (err.code === "FST_ERR_CTP_BODY_TOO_LARGE") {
      return sendError(reply, 413, "BODY_TOO_LARGE", `body exceeds ${deps.bodyLimitBytes} bytes; split it or use POST /v1/imports`);
    }
    if (err instanceof HashrelayError) {
      return sendError(reply, STATUS_BY_REASON[err.reason] ?? 422, err.reason, err.message);
    }
    if (err.statusCode && err.statusCode < 500) return sendError(reply, err.statusCode, "INVALID_FIELD", err.message);
    req.log.error({ err }, "request failed");
    return sendError(reply, 503, "INTERNAL", "the hub could not take this request now; nothing was accepted, retry later");
  });
}

/**
 * Every /v1 route is an agency's: authenticate before the handler sees the body. A submission
 * request's replay check is left to the ledger's look-up, which makes it in the same round trip
 * and before anything is published; every other route checks it here.
 */
function addAgencyAuthentication(app: FastifyInstance, deps: IngestApiDeps): void {
  app.addHook("preHandler", async (req) => {
    if (!req.url.startsWith("/v1/")) return;
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const signed = { method: req.method, path: req.url, body, headers: req.headers };
    await refusalsCounted(req, deps, async () => {
      if (deps.replay && req.method === "POST" && req.routeOptions.url === "/v1/submissions") {
        const { agencyId, keyId, claim } = await verifyRequest(signed, deps.keys, new Date());
        req.agency = { agencyId, keyId };
        req.replayClaim = claim;
      } else {
        req.agency = await authenticateRequest(signed, deps.keys, new Date(), deps.replay);
      }
    });
  });
}

/** Runs `step`, logging and counting a refused signature before passing the refusal on. */
async function refusalsCounted<T>(req: FastifyRequest, deps: IngestApiDeps, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    if (err instanceof SignatureError) {
      req.log.warn({ agencyId: req.headers["x-hashrelay-agency"], reason: err.reason }, "request refused");
      if (SIGNATURE_REASONS.has(err.reason)) deps.metrics.records.signatureFailures.labels(err.reason).inc();
    }
    throw err;
  }
}

/** Health, readiness, metrics and the OpenAPI document: unauthenticated, outside /v1. */
function addOperationalRoutes(app: FastifyInstance, deps: IngestApiDeps): void {
  addOpsRoutes(app, { registry: deps.metrics.registry, ready: deps.ready });
  app.get("/openapi.json", async () => OPENAPI_DOCUMENT);
}

/** The exact bytes received; none when the request had no body. */
function bodyOf(req: FastifyRequest): Buffer {
  return Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
}

/** Throws UNSUPPORTED_MEDIA_TYPE (415, through STATUS_BY_REASON) unless the request's Content-Type is one the route reads. */
function requireMediaType(req: FastifyRequest, route: BodyRoute): void {
  const check = checkMediaType(req.headers["content-type"], route);
  if (!check.ok) throw new HashrelayError("UNSUPPORTED_MEDIA_TYPE", check.detail);
}

function addSubmissionRoutes(app: FastifyInstance, deps: IngestApiDeps): void {
  app.post("/v1/submissions", async (req: FastifyRequest, reply) => {
    const agency = req.agency as AuthenticatedAgency;
    const claim = req.replayClaim;
    const admit = (items: IntakeItem[]) => refusalsCounted(req, deps, () => admitBatch(deps.intake, agency, "http", items, claim));
    const body = bodyOf(req);
    const media = checkMediaType(req.headers["content-type"], "/v1/submissions");
    if (!media.ok) {
      // Refused bytes are kept on the dead-letter topic, as a body that is not JSON is.
      const refused: IntakeItem = { index: 0, ok: false, reason: "UNSUPPORTED_MEDIA_TYPE", detail: media.detail, original: body };
      deps.metrics.admitted("http", await admit([refused]));
      throw new HashrelayError("UNSUPPORTED_MEDIA_TYPE", media.detail);
    }
    const items: IntakeItem[] = parseSubmissionBatch(body);
    if (items.length > deps.maxItemsPerRequest) {
      // Nothing is admitted, but a replay is still refused as one.
      if (claim && deps.replay) {
        await refusalsCounted(req, deps, async () => {
          if (!(await deps.replay?.firstUse(claim.signatureDigest, claim.forgetAfter))) throw requestReplayed(claim);
        });
      }
      return sendError(reply, 413, "BODY_TOO_LARGE", `at most ${deps.maxItemsPerRequest} submissions per request; use POST /v1/imports`);
    }
    const outcomes = await admit(items);
    deps.metrics.admitted("http", outcomes);
    const receipt = addToReceipt(emptyReceipt(), outcomes);
    req.log.info({ agencyId: agency.agencyId, ...receipt }, "submissions admitted");
    const status = receipt.rejected === 0 ? 202 : receipt.rejected === outcomes.length ? 422 : 207;
    return reply.code(status).send({ receipt, items: outcomes });
  });
}

function addImportRoutes(app: FastifyInstance, deps: IngestApiDeps): void {
  app.post("/v1/imports", async (req, reply) => {
    const agency = req.agency as AuthenticatedAgency;
    // An import request names an object; it is not a record, so a refused one is not dead-lettered.
    requireMediaType(req, "/v1/imports");
    let request: { bucket?: unknown; key?: unknown };
    try {
      request = JSON.parse(bodyOf(req).toString("utf8")) as { bucket?: unknown; key?: unknown };
    } catch {
      return sendError(reply, 400, "MALFORMED_JSON", 'body must be JSON: {"key": "...", "bucket": "..."}');
    }
    if (typeof request.key !== "string" || !request.key || (request.bucket !== undefined && typeof request.bucket !== "string")) {
      return sendError(reply, 400, "INVALID_FIELD", '"key" (string) is required; "bucket" is optional');
    }
    // An agency imports only from the hub's import bucket, and only under its own prefix.
    if (request.bucket !== undefined && request.bucket !== deps.imports.bucket) {
      return sendError(reply, 403, "AGENCY_MISMATCH", `imports are read from bucket ${deps.imports.bucket} only`);
    }
    if (!request.key.startsWith(`imports/${agency.agencyId}/`) || request.key.includes("..")) {
      return sendError(reply, 403, "AGENCY_MISMATCH", `object key must start with imports/${agency.agencyId}/`);
    }
    const job = await deps.imports.start(agency.agencyId, request.key);
    return reply.code(202).send(job);
  });

  app.get("/v1/imports/:id", async (req, reply) => {
    const agency = req.agency as AuthenticatedAgency;
    const job = await deps.imports.get(agency.agencyId, (req.params as { id: string }).id);
    if (!job) return sendError(reply, 404, "NOT_FOUND", "no such import for this agency");
    return job;
  });
}
