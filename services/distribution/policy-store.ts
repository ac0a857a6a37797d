/** Partner policies in the hub database (managed with `bin/hashrelay policies ...`). */
import { ValidationError } from "../shared/errors.ts";
import type { Queryable } from "../shared/postgres.ts";
import { GradingStatusValues, HashAlgValues, UkCategoryValues } from "../shared/records.ts";
import type { GradingStatus, HashAlg, UkCategory } from "../shared/records.ts";
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
});

export async function loadPolicies(db: Queryable): Promise<PartnerPolicy[]> {
  const { rows } = await db.query<PolicyRow>("SELECT * FROM partner_policies ORDER BY partner_id");
  return rows.map(toPolicy);
}

function check<T extends string>(what: string, values: readonly string[], allowed: readonly T[]): T[] {
  const bad = values.filter((v) => !(allowed as readonly string[]).includes(v));
  if (bad.length) throw new ValidationError("INVALID_FIELD", `unknown ${what}: ${bad.join(", ")} (allowed: ${allowed.join(", ")})`);
  return values as T[];
}

/** Creates or replaces a partner's policy; the version goes up so distribution re-evaluates the feed. */
export async function setPolicy(db: Queryable, p: Omit<PartnerPolicy, "version">): Promise<number> {
  check("category", p.categories, UkCategoryValues);
  check("algorithm", p.algorithms, HashAlgValues);
  check("extra field", p.extraFields, EXTRA_FIELDS);
  check("grading status", [p.minGradingStatus], GradingStatusValues);
  const { rows } = await db.query<{ version: number }>(
    `INSERT INTO partner_policies (partner_id, categories, min_grading_status, algorithms, scheme, extra_fields, delivery, feed_partitions)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (partner_id) DO UPDATE SET categories = EXCLUDED.categories, min_grading_status = EXCLUDED.min_grading_status,
       algorithms = EXCLUDED.algorithms, scheme = EXCLUDED.scheme, extra_fields = EXCLUDED.extra_fields,
       delivery = EXCLUDED.delivery, version = partner_policies.version + 1, updated_at = now()
     RETURNING version`,
    [p.partnerId, p.categories, p.minGradingStatus, p.algorithms, p.scheme, p.extraFields, p.delivery, p.feedPartitions],
  );
  return (rows[0] as { version: number }).version;
}
