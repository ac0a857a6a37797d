/**
 * The hub's signing identity for feed records and S3 manifests, loaded at start-up: the private
 * key from its file, refused unless its key id is registered for the hub and usable now, since
 * partners would reject everything signed with any other.
 */
import { readFileSync } from "node:fs";
import { ConfigError } from "../shared/errors.ts";
import { PgKeyRegistry, assertKeyUsable } from "../shared/key-registry.ts";
import type { Pool } from "../shared/postgres.ts";
import { privateKeyFromPem } from "../shared/wire/signing.ts";
import type { HubSigner } from "./feed-writer.ts";

export async function loadHubSigner(pool: Pool, o: { keyId: string; keyFile: string; pseudonymSecret: string }): Promise<HubSigner> {
  let privateKeyPem: string;
  try {
    privateKeyPem = readFileSync(o.keyFile, "utf8");
  } catch (err) {
    throw new ConfigError(`HUB_SIGNING_KEY_FILE ${o.keyFile} cannot be read: ${(err as Error).message}`);
  }
  assertKeyUsable(o.keyId, await new PgKeyRegistry(pool, 0).findKey(o.keyId), { ownerKind: "hub", ownerId: "hub", at: new Date() });
  return { keyId: o.keyId, privateKey: privateKeyFromPem(privateKeyPem), pseudonymSecret: o.pseudonymSecret };
}
