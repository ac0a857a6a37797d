/** Registering synthetic agencies with fresh keys in a test's hub database. */
import { registerAgency } from "../../services/admin/registry.ts";
import type { AgencyKind } from "../../services/admin/registry.ts";
import type { Queryable } from "../../services/shared/postgres.ts";
import { privateKeyFromPem } from "../../services/shared/wire/signing.ts";
import type { AgencySigner } from "../../services/force-cli/client.ts";
import { AvroCodec } from "../../services/shared/wire/codec.ts";
import { signRecord } from "../../services/shared/wire/signing.ts";
import type { Unsigned } from "../../services/shared/wire/signing.ts";
import type { Submission } from "../../services/shared/wire/records.ts";
import { unsignedSubmission } from "./fixtures.ts";
import { registerFreshKey } from "./keys.ts";

export async function registerTestAgency(
  db: Queryable,
  agencyId: string,
  options: { kind?: AgencyKind; authority?: boolean; validFrom?: Date; validUntil?: Date | null } = {},
): Promise<AgencySigner> {
  await registerAgency(db, {
    agencyId,
    name: `Synthetic ${agencyId}`,
    kind: options.kind ?? "force",
    gradingAuthority: options.authority ?? false,
  });
  return addTestKey(db, agencyId, options);
}

export async function addTestKey(
  db: Queryable,
  agencyId: string,
  options: { validFrom?: Date; validUntil?: Date | null } = {},
): Promise<AgencySigner> {
  const key = await registerFreshKey(db, "agency", agencyId, {
    validFrom: options.validFrom ?? new Date(Date.now() - 3_600_000),
    validUntil: options.validUntil ?? null,
  });
  return { agencyId, keyId: key.keyId, privateKey: privateKeyFromPem(key.privateKeyPem) };
}

const codec = new AvroCodec();

/** A synthetic submission signed by the given agency key. */
export function signedSubmission(signer: AgencySigner, overrides: Partial<Unsigned<Submission>> = {}): Submission {
  return signRecord(
    "Submission",
    codec.schema("Submission").type,
    unsignedSubmission({ agencyId: signer.agencyId, keyId: signer.keyId, ...overrides }),
    signer.privateKey,
  );
}
