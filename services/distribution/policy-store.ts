/** Partner policies in the hub database (managed with `bin/hashrelay policies ...`). */
import { ValidationError } from "../shared/errors.ts";
import type { Queryable } from "../shared/postgres.ts";
import { GradingStatusValues, UkCategoryValues } from "../shared/wire/records.ts";
import type { GradingStatus, HashAlg, UkCategory } from "../shared/wire/records.ts";
import { HASH_ALGORITHM_NAMES } from "../shared/wire/hash-algorithms.ts";
import { EXTRA_FIELDS } from "./policy.ts";
import type { CategoryScheme, Delivery, ExtraField, PartnerPolicy } from "./policy.ts";

interface PolicyRow {
  partner_id: string;
  categories: UkCategory[];
  min_grading_status: GradingStatus;
  algorithms: HashAlg[];
  scheme: CategoryScheme;
  extra_fields: ExtraField[];
  delivery: Delivery;
  feed_partitions: number;
  version: number;
  withhold_under_review: boolean;
}

const toPolicy = (r: PolicyRow): PartnerPolicy => ({
  partnerId: r.partner_id,
  categories: r.categories,
  minGradingStatus: r.min_grading_status,
  algorithms: r.algorithms,
  scheme: r.scheme,
  extraFields: r.extra_fields,
  delivery: r.delivery,
  feedPartitions: r.feed_partitions,
  version: r.version,
  withholdUnderReview: r.withhold_under_review,
});

/** The policies distribution acts on: every partner's but the suspended ones. */
export async function loadPolicies(db: Queryable): Promise<PartnerPolicy[]> {
  const { rows } = await db.query<PolicyRow>("SELECT * FROM partner_policies WHERE suspended_at IS NULL ORDER BY partner_id");
  return rows.map(toPolicy);
}

/**
 * The versions of the policies loadPolicies returns, as one key a round compares with the last it
 * saw: every change (a new partner, a new version, a suspension or resumption) changes it. Without
 * parameters, so that a round can send it with its first statements (exactly-once-step readAtBegin).
 */
export const ACTIVE_POLICY_VERSIONS = `SELECT coalesce(string_agg(partner_id || ':' || version, ',' ORDER BY partner_id COLLATE "C"), '') AS versions
  FROM partner_policies WHERE suspended_at IS NULL`;

export async function activePolicyVersions(db: Queryable): Promise<string> {
  return activeVersionsOf((await db.query(ACTIVE_POLICY_VERSIONS)).rows);
}

/** The key in the rows of ACTIVE_POLICY_VERSIONS. */
export function activeVersionsOf(rows: readonly Record<string, unknown>[]): string {
  return String(rows[0]?.["versions"] ?? "");
}

/** Whether `policy` is the partner's stored policy, unsuspended: the one distribution acts on. */
export async function isActivePolicy(db: Queryable, policy: Pick<PartnerPolicy, "partnerId" | "version">): Promise<boolean> {
  const { rows } = await db.query("SELECT 1 FROM partner_policies WHERE partner_id = $1 AND version = $2 AND suspended_at IS NULL", [
    policy.partnerId,
    policy.version,
  ]);
  return rows.length > 0;
}

/** The same key as activePolicyVersions, of policies already loaded (ids in byte order, as COLLATE "C"). */
export function policyVersionsKey(policies: readonly PartnerPolicy[]): string {
  return [...policies]
    .sort((a, b) => (a.partnerId < b.partnerId ? -1 : a.partnerId > b.partnerId ? 1 : 0))
    .map((p) => `${p.partnerId}:${p.version}`)
    .join(",");
}

export interface PolicyListing {
  readonly policy: PartnerPolicy;
  /** Set while the partner is suspended. */
  readonly suspension: { readonly at: Date; readonly reason: string } | null;
}

/** Every policy, suspended ones included, for operators. */
export async function listPolicies(db: Queryable): Promise<PolicyListing[]> {
  const { rows } = await db.query<PolicyRow & { suspended_at: Date | null; suspended_reason: string | null }>(
    "SELECT * FROM partner_policies ORDER BY partner_id",
  );
  return rows.map((r) => ({
    policy: toPolicy(r),
    suspension: r.suspended_at ? { at: r.suspended_at, reason: r.suspended_reason ?? "" } : null,
  }));
}

/**
 * Stops a partner's feed (offboarding, a suspected leak, a contract pause) without forgetting what it
 * holds. Returns the new version; refuses a partner with no policy or one already suspended.
 */
export async function suspendPolicy(db: Queryable, partnerId: string, reason: string): Promise<number> {
  if (!reason.trim()) throw new ValidationError("INVALID_FIELD", "a suspension needs a reason");
  const { rows } = await db.query<{ version: number }>(
    `UPDATE partner_policies SET suspended_at = now(), suspended_reason = $2, version = version + 1, updated_at = now()
      WHERE partner_id = $1 AND suspended_at IS NULL RETURNING version`,
    [partnerId, reason],
  );
  if (rows[0]) return rows[0].version;
  throw await notChanged(db, partnerId, "already suspended");
}

/** Lets a suspended partner's feed flow again; distribution then sends what changed meanwhile. */
export async function resumePolicy(db: Queryable, partnerId: string): Promise<number> {
  const { rows } = await db.query<{ version: number }>(
    `UPDATE partner_policies SET suspended_at = NULL, suspended_reason = NULL, version = version + 1, updated_at = now()
      WHERE partner_id = $1 AND suspended_at IS NOT NULL RETURNING version`,
    [partnerId],
  );
  if (rows[0]) return rows[0].version;
  throw await notChanged(db, partnerId, "not suspended");
}

async function notChanged(db: Queryable, partnerId: string, state: string): Promise<ValidationError> {
  const { rows } = await db.query("SELECT 1 FROM partner_policies WHERE partner_id = $1", [partnerId]);
  return rows.length === 0
    ? new ValidationError("NOT_FOUND", `partner ${partnerId} has no policy`)
    : new ValidationError("INVALID_FIELD", `the policy of ${partnerId} is ${state}`);
}

function check<T extends string>(what: string, values: readonly string[], allowed: readonly T[]): T[] {
  const bad = values.filter((v) => !(allowed as readonly string[]).includes(v));
  if (bad.length) throw new ValidationError("INVALID_FIELD", `unknown ${what}: ${bad.join(", ")} (allowed: ${allowed.join(", ")})`);
  return values as T[];
}

/** Creates or replaces a partner's policy; the version goes up so distribution re-evaluates the feed. */
export async function setPolicy(db: Queryable, p: Omit<PartnerPolicy, "version">): Promise<number> {
  check("category", p.categories, UkCategoryValues);
  check("algorithm", p.algorithms, HASH_ALGORITHM_NAMES);
  check("extra field", p.extraFields, EXTRA_FIELDS);
  check("grading status", [p.minGradingStatus], GradingStatusValues);
  const { rows } = await db.query<{ version: number }>(
    `INSERT INTO partner_policies (partner_id, categories, min_grading_status, algorithms, scheme, extra_fields, delivery, feed_partitions,
                                   withhold_under_review)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
     ON CONFLICT (partner_id) DO UPDATE SET categories = EXCLUDED.categories, min_grading_status = EXCLUDED.min_grading_status,
       algorithms = EXCLUDED.algorithms, scheme = EXCLUDED.scheme, extra_fields = EXCLUDED.extra_fields,
       delivery = EXCLUDED.delivery, withhold_under_review = EXCLUDED.withhold_under_review,
       version = partner_policies.version + 1, updated_at = now()
     RETURNING version`,
    [
      p.partnerId,
      p.categories,
      p.minGradingStatus,
      p.algorithms,
      p.scheme,
      p.extraFields,
      p.delivery,
      p.feedPartitions,
      p.withholdUnderReview ?? false,
    ],
  );
  return (rows[0] as { version: number }).version;
}
