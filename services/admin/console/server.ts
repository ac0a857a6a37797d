/**
 * The console's HTTP edge: every route but /healthz needs a signed-in operator (Basic, auth.ts);
 * pages are read-only GETs; the one action, a DLQ re-drive, is a POST that needs a role with
 * actions and the console's own form token. Answers carry a strict Content-Security-Policy (no
 * script at all, styles only from here) and are never cached. Errors map to status codes in one
 * table; their text is escaped like everything else.
 */
import Fastify from "fastify";
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { HashrelayError } from "../../shared/errors.ts";
import type { ReasonCode } from "../../shared/errors.ts";
import type { Logger } from "../../shared/logging.ts";
import type { RedriveFilter, RedriveReport } from "../redrive.ts";
import { ForbiddenError, roleOf } from "./auth.ts";
import type { ConsoleAuthenticator, ConsoleUser, FormTokens } from "./auth.ts";
import type { Html } from "./html.ts";
import { groupRejections, parseHashQuery, visibleRecord } from "./overview.ts";
import type { AlertThresholds } from "./overview.ts";
import type { ConsoleReads, Part } from "./reads.ts";
import { CONSOLE_CSS, dlqPage, errorPage, keysPage, lookupPage, overviewPage, redrivePage } from "./views.ts";
import type { PageContext } from "./views.ts";

export interface ConsoleDeps {
  readonly reads: ConsoleReads;
  readonly auth: ConsoleAuthenticator;
  readonly forms: FormTokens;
  /** Runs a re-drive as `actor` and records its audit event; returns what to tell the operator about the audit. */
  readonly redrive: (filter: RedriveFilter, actor: string) => Promise<{ report: RedriveReport; audit: string }>;
  /**
   * Records that `user` looked a hash up (the records found): the lookup is refused when this
   * fails, so no consultation goes unlogged.
   */
  readonly recordLookup: (user: ConsoleUser, algs: readonly string[], recordIds: readonly string[]) => Promise<void>;
  readonly thresholds: AlertThresholds;
  readonly namespace: string;
  readonly logger: Logger;
  readonly now?: () => Date;
  /** What /readyz checks. */
  readonly ready?: () => Promise<void>;
}

const STATUS_BY_REASON: Partial<Record<ReasonCode, number>> = {
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  INVALID_FIELD: 400,
};

const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
};

declare module "fastify" {
  interface FastifyRequest {
    consoleUser?: ConsoleUser;
  }
}

export function buildConsoleApp(deps: ConsoleDeps): FastifyInstance {
  const app: FastifyInstance = Fastify({ loggerInstance: deps.logger as FastifyBaseLogger });
  const now = deps.now ?? (() => new Date());
  app.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string", bodyLimit: 4096 }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });

  app.addHook("onRequest", async (req, reply) => {
    reply.headers(SECURITY_HEADERS);
    if (req.url === "/healthz" || req.url === "/readyz") return;
    req.consoleUser = deps.auth.authenticate(req.headers.authorization);
  });

  const ctxOf = (req: FastifyRequest): PageContext => {
    const user = req.consoleUser as ConsoleUser;
    return { user, role: roleOf(user), namespace: deps.namespace, now: now() };
  };
  const send = (reply: FastifyReply, page: Html, status = 200) => reply.code(status).type("text/html; charset=utf-8").send(page.markup);

  app.setErrorHandler((err, req, reply) => {
    const status = err instanceof HashrelayError ? (STATUS_BY_REASON[err.reason] ?? 500) : 500;
    if (status === 401) reply.header("www-authenticate", 'Basic realm="hashrelay console", charset="UTF-8"');
    if (status >= 500) deps.logger.error({ err, url: req.url, user: req.consoleUser?.name }, "console request failed");
    else deps.logger.warn({ reason: (err as HashrelayError).reason, url: req.url, user: req.consoleUser?.name }, "console request refused");
    const message = err instanceof HashrelayError ? err.detail : "the console could not answer; see its log";
    send(reply, errorPage(req.consoleUser ? ctxOf(req) : null, status, message), status);
  });

  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/readyz", async (_req, reply) => {
    try {
      await deps.ready?.();
      return { status: "ready" };
    } catch (err) {
      return reply.code(503).send({ status: "not ready", error: (err as Error).message });
    }
  });
  app.get("/static/console.css", async (_req, reply) => reply.type("text/css; charset=utf-8").send(CONSOLE_CSS));

  app.get("/", async (req, reply) => {
    const [pipeline, partners] = await Promise.all([deps.reads.pipeline(), deps.reads.partners()]);
    return send(reply, overviewPage(ctxOf(req), pipeline, partners, deps.thresholds));
  });

  app.get("/dlq", async (req, reply) => {
    const all = await deps.reads.rejections();
    const recent = [...all].sort((a, b) => b.rejectedAt - a.rejectedAt).slice(0, 50);
    return send(reply, dlqPage(ctxOf(req), groupRejections(all), recent, deps.forms.issue(req.consoleUser as ConsoleUser), all.length));
  });

  app.post("/dlq/redrive", async (req, reply) => {
    const ctx = ctxOf(req);
    if (!ctx.role.actions) throw new ForbiddenError(`the ${ctx.user.role} role cannot re-drive; ask an operator`);
    const body = (req.body ?? {}) as Record<string, unknown>;
    deps.forms.check(ctx.user, body["token"]);
    const reason = typeof body["reason"] === "string" ? body["reason"] : "";
    const service = typeof body["service"] === "string" ? body["service"] : "";
    if (!/^[A-Z_]{2,40}$/.test(reason) || !/^[a-z-]{2,40}$/.test(service)) {
      throw new HashrelayError("INVALID_FIELD", "a re-drive needs a reason code and a service, as the dead-letter page sends them");
    }
    const { report, audit } = await deps.redrive({ reason, service }, ctx.user.name);
    deps.logger.info({ user: ctx.user.name, reason, service, matched: report.matched }, "dlq re-driven from the console");
    return send(reply, redrivePage(ctx, { reason, service }, report, audit));
  });

  app.get("/keys", async (req, reply) => {
    const { keys, coverage } = await deps.reads.keys();
    return send(reply, keysPage(ctxOf(req), keys, coverage, deps.thresholds.keyWarningDays));
  });

  app.get("/lookup", async (req, reply) => {
    const ctx = ctxOf(req);
    const input = String((req.query as Record<string, unknown>)["hash"] ?? "").slice(0, 400);
    const q = parseHashQuery(input);
    if (!q) return send(reply, lookupPage(ctx, { input, algs: null, records: [], disclosures: null }), input ? 400 : 200);
    const records = (await deps.reads.lookup(q)).map((r) => visibleRecord(r, ctx.role));
    await deps.recordLookup(
      ctx.user,
      q.algs,
      records.map((r) => r.recordId),
    );
    let disclosures: Part<Awaited<ReturnType<ConsoleReads["disclosures"]>>> | null = null;
    if (records.length) {
      try {
        disclosures = { ok: true, value: await deps.reads.disclosures(records.map((r) => r.recordId)) };
      } catch (err) {
        disclosures = { ok: false, error: (err as Error).message };
      }
    }
    return send(reply, lookupPage(ctx, { input: q.value, algs: q.algs, records, disclosures }));
  });

  return app;
}
