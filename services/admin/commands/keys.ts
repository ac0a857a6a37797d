/**
 * `hashrelay keys`: generates Ed25519 key pairs (the private key never leaves the file written with
 * mode 0600), registers and revokes public keys, and reports the live records that rest only on a
 * key. Registration and revocation are stored in one transaction with their audit event.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Option } from "commander";
import type { Command } from "commander";
import { recordsAssertedOnlyByKey } from "../../dedup/key-report.ts";
import { PgKeyRegistry } from "../../shared/key-registry.ts";
import type { KeyOwnerKind } from "../../shared/key-registry.ts";
import type { Queryable } from "../../shared/postgres.ts";
import { deriveKeyId, generateSigningKeyPair } from "../../shared/wire/signing.ts";
import { keyRegistered, keyRevoked } from "../audit.ts";
import { auditTarget, audited, commitAudited, parseDate, sendAudit, withDb } from "../cli.ts";
import type { AuditOptions } from "../cli.ts";

async function dependentRecords(db: Queryable, keyId: string) {
  // The dedup tables may not exist yet on a hub that has not run dedup.
  const { rows } = await db.query<{ t: string | null }>("SELECT to_regclass('sightings')::text AS t");
  return rows[0]?.t ? recordsAssertedOnlyByKey(db, keyId) : [];
}

function readPublicKey(value: string): Buffer {
  // Accept the base64 printed by `keys generate`, or a path to a file holding it.
  let text = value;
  try {
    text = readFileSync(value, "utf8").trim();
  } catch {
    /* not a file: treat as base64 */
  }
  const raw = Buffer.from(text, "base64");
  if (raw.length !== 32) throw new Error("public key must be 32 bytes of Ed25519, base64 encoded");
  return raw;
}

export function addKeyCommands(program: Command): void {
  const keys = program.command("keys").description("Ed25519 signing keys");
  keys
    .command("generate")
    .description("make a key pair; writes the private key (mode 0600) and prints the key id and public key")
    .requiredOption("--owner <id>", "agency or partner id, or 'hub'")
    .requiredOption("--out <dir>", "directory for the private key file")
    .action((o: { owner: string; out: string }) => {
      const pair = generateSigningKeyPair();
      const keyId = deriveKeyId(o.owner, pair.publicKey);
      mkdirSync(o.out, { recursive: true, mode: 0o700 });
      const file = join(o.out, `${keyId.replace(/[^a-zA-Z0-9-]/g, "_")}.pem`);
      writeFileSync(file, pair.privateKeyPem, { mode: 0o600 });
      writeFileSync(`${file}.pub`, `${pair.publicKey.toString("base64")}\n`);
      console.log(JSON.stringify({ keyId, publicKey: pair.publicKey.toString("base64"), privateKeyFile: file }));
    });
  audited(
    keys
      .command("register")
      .requiredOption("--key-id <id>")
      .addOption(new Option("--owner-kind <kind>").choices(["agency", "hub", "partner"]).default("agency"))
      .requiredOption("--owner <id>")
      .requiredOption("--public-key <base64|file>")
      .option("--valid-from <iso>", "start of validity", new Date().toISOString())
      .option("--valid-until <iso>", "end of validity (open-ended if omitted)"),
  ).action(
    async (
      o: {
        keyId: string;
        ownerKind: KeyOwnerKind;
        owner: string;
        publicKey: string;
        validFrom: string;
        validUntil?: string;
      } & AuditOptions,
    ) => {
      const { actor, topics } = auditTarget(o);
      const key = {
        keyId: o.keyId,
        ownerKind: o.ownerKind,
        ownerId: o.owner,
        publicKey: readPublicKey(o.publicKey),
        validFrom: parseDate(o.validFrom),
        validUntil: o.validUntil ? parseDate(o.validUntil) : null,
      };
      const { event } = await commitAudited(
        topics,
        (db) => new PgKeyRegistry(db).registerKey(key),
        () => keyRegistered(actor, key),
      );
      console.log(`key ${o.keyId} registered for ${o.ownerKind} ${o.owner}`);
      await sendAudit(topics, event);
    },
  );
  audited(keys.command("revoke").requiredOption("--key-id <id>").requiredOption("--reason <text>")).action(
    async (o: { keyId: string; reason: string } & AuditOptions) => {
      const { actor, topics } = auditTarget(o);
      const { result, event } = await commitAudited(
        topics,
        async (db) => {
          const registry = new PgKeyRegistry(db, 0);
          await registry.revokeKey(o.keyId, o.reason);
          return { dependent: await dependentRecords(db, o.keyId), key: await registry.findKey(o.keyId) };
        },
        ({ dependent, key }) => keyRevoked(actor, o.keyId, o.reason, key, dependent.length),
      );
      console.log(`key ${o.keyId} revoked; later submissions signed with it are rejected (KEY_REVOKED)`);
      console.log(`${result.dependent.length} live records were asserted only with this key (see \`keys report --key-id ${o.keyId}\`)`);
      await sendAudit(topics, event);
    },
  );
  keys
    .command("report")
    .description("live records asserted only by submissions signed with this key")
    .requiredOption("--key-id <id>")
    .action(async (o: { keyId: string }) => {
      const dependent = await withDb((db) => dependentRecords(db, o.keyId));
      for (const r of dependent) console.log(`${r.recordId}\t${r.hashes} hashes\t${r.agencies.join(",")}`);
      console.log(`${dependent.length} records`);
    });
  keys
    .command("list")
    .option("--owner <id>")
    .action(async (o: { owner?: string }) => {
      for (const k of await withDb((db) => new PgKeyRegistry(db, 0).listKeys(undefined, o.owner))) {
        const state = k.revokedAt ? `revoked ${k.revokedAt.toISOString()}` : k.validUntil ? `until ${k.validUntil.toISOString()}` : "open";
        console.log(`${k.keyId}\t${k.ownerKind}\t${k.ownerId}\tfrom ${k.validFrom.toISOString()}\t${state}`);
      }
    });
}
