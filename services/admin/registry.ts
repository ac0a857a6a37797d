/** Registration of agencies and partners in the hub database (used by the admin CLI and tests). */
import { ValidationError } from "../shared/errors.ts";
import type { Queryable } from "../shared/postgres.ts";

export type AgencyKind = "force" | "nca" | "other";

export interface Agency {
  readonly agencyId: string;
  readonly name: string;
  readonly kind: AgencyKind;
  readonly gradingAuthority: boolean;
}

export interface Partner {
  readonly partnerId: string;
  readonly name: string;
}

const ID_PATTERN = /^[a-z0-9][a-z0-9-]{1,62}$/;

function assertId(what: string, id: string): void {
  if (!ID_PATTERN.test(id)) {
    throw new ValidationError("INVALID_FIELD", `${what} id ${JSON.stringify(id)} must be 2-63 chars of a-z, 0-9 and '-'`);
  }
}

/** Inserts or updates an agency (re-running a registration script is safe). */
export async function registerAgency(db: Queryable, agency: Agency): Promise<void> {
  assertId("agency", agency.agencyId);
  await db.query(
    `INSERT INTO agencies (agency_id, name, kind, grading_authority) VALUES ($1, $2, $3, $4)
     ON CONFLICT (agency_id) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind,
       grading_authority = EXCLUDED.grading_authority`,
    [agency.agencyId, agency.name, agency.kind, agency.gradingAuthority],
  );
}

export async function registerPartner(db: Queryable, partner: Partner): Promise<void> {
  assertId("partner", partner.partnerId);
  await db.query(
    `INSERT INTO partners (partner_id, name) VALUES ($1, $2)
     ON CONFLICT (partner_id) DO UPDATE SET name = EXCLUDED.name`,
    [partner.partnerId, partner.name],
  );
}

export async function listAgencies(db: Queryable): Promise<Agency[]> {
  const { rows } = await db.query<{ agency_id: string; name: string; kind: AgencyKind; grading_authority: boolean }>(
    "SELECT agency_id, name, kind, grading_authority FROM agencies ORDER BY agency_id",
  );
  return rows.map((r) => ({ agencyId: r.agency_id, name: r.name, kind: r.kind, gradingAuthority: r.grading_authority }));
}

export async function listPartners(db: Queryable): Promise<Partner[]> {
  const { rows } = await db.query<{ partner_id: string; name: string }>("SELECT partner_id, name FROM partners ORDER BY partner_id");
  return rows.map((r) => ({ partnerId: r.partner_id, name: r.name }));
}
