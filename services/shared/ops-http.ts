/**
 * The operational endpoints every service answers, unauthenticated and free of any record data:
 * /healthz (the process runs), /readyz (what it depends on answers: 503 with the reason when not)
 * and /metrics (Prometheus text exposition). Services with an HTTP API add them to it; the
 * consumers without one (dedup, distribution) serve them on a port of their own.
 */
import Fastify from "fastify";
import type { FastifyBaseLogger, FastifyInstance } from "fastify";
import type { Registry } from "prom-client";
import type { Logger } from "./logging.ts";

export interface OpsEndpoints {
  readonly registry: Registry;
  /** Resolves when the service can work (its database and broker answer); rejects with the reason. */
  readonly ready: () => Promise<void>;
}

/** Probes and scrapes come every few seconds: their requests are not logged (errors still are). */
const QUIET = { logLevel: "warn" } as const;

export function addOpsRoutes(app: FastifyInstance, ops: OpsEndpoints): void {
  app.get("/healthz", QUIET, async () => ({ status: "ok" }));
  app.get("/readyz", QUIET, async (_req, reply) => {
    try {
      await ops.ready();
      return { status: "ready" };
    } catch (err) {
      return reply.code(503).send({ status: "not ready", error: (err as Error).message });
    }
  });
  app.get("/metrics", QUIET, async (_req, reply) => {
    reply.header("content-type", ops.registry.contentType);
    return ops.registry.metrics();
  });
}

export interface OpsServer {
  readonly url: string;
  close(): Promise<void>;
}

/** A server with only the operational endpoints, for a service that has no HTTP API. */
export async function startOpsServer(o: OpsEndpoints & { host: string; port: number; logger: Logger }): Promise<OpsServer> {
  const app: FastifyInstance = Fastify({ loggerInstance: o.logger as FastifyBaseLogger });
  addOpsRoutes(app, o);
  const url = await app.listen({ host: o.host, port: o.port });
  return { url, close: () => app.close() };
}
