/**
 * What operators see of degenerate perceptual values (degenerate_hashes): the algorithm, a prefix of
 * the value, the reason, how many distinct records carry it and when it was first found degenerate,
 * and the counts by reason. Never a record's law-enforcement-only fields, never a whole value.
 */
import type { Queryable } from "../shared/postgres.ts";
import type { DegenerateReason, HashAlg } from "../shared/wire/records.ts";
import { valuePrefix } from "./degenerate.ts";

export interface DegenerateValue {
  readonly alg: HashAlg;
  readonly valuePrefix: string;
  readonly reason: DegenerateReason;
  readonly records: number;
  readonly firstSeenAt: number;
}

/** Degenerate values, most carried first; `reason` narrows the list. */
export async function degenerateValues(db: Queryable, options: { reason?: DegenerateReason; limit: number }): Promise<DegenerateValue[]> {
  const { rows } = await db.query<{ alg: HashAlg; value: string; reason: DegenerateReason; records: number; first_seen_at: string }>(
    `SELECT alg, value, reason, records, first_seen_at FROM degenerate_hashes
      WHERE $1::text IS NULL OR reason = $1 ORDER BY records DESC, first_seen_at, alg, value LIMIT $2`,
    [options.reason ?? null, options.limit],
  );
  return rows.map((r) => ({
    alg: r.alg,
    valuePrefix: valuePrefix(r.value),
    reason: r.reason,
    records: r.records,
    firstSeenAt: Number(r.first_seen_at),
  }));
}

/** How many values are degenerate, by reason (reasons with none left out). */
export async function degenerateCounts(db: Queryable): Promise<Partial<Record<DegenerateReason, number>>> {
  const { rows } = await db.query<{ reason: DegenerateReason; n: number }>(
    "SELECT reason, count(*)::int AS n FROM degenerate_hashes GROUP BY reason ORDER BY reason",
  );
  return Object.fromEntries(rows.map((r) => [r.reason, r.n]));
}
