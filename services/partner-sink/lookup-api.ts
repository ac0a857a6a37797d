/**
 * The partner's lookup endpoint: is this hash in our list, and in which category. The sink's
 * operational endpoints (/metrics, /healthz, /readyz) answer beside it.
 */
import Fastify from "fastify";
import type { FastifyBaseLogger, FastifyInstance } from "fastify";
import type { Logger } from "../shared/logging.ts";
import { addOpsRoutes } from "../shared/ops-http.ts";
import type { OpsEndpoints } from "../shared/ops-http.ts";
import type { Pool } from "../shared/postgres.ts";
import { HASH_ALGORITHM_NAMES, canonicalCase, isHashAlg } from "../shared/wire/hash-algorithms.ts";

export function buildLookupApi(pool: Pool, logger: Logger, ops: OpsEndpoints): FastifyInstance {
  const app: FastifyInstance = Fastify({ loggerInstance: logger as FastifyBaseLogger });
  addOpsRoutes(app, ops);
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
