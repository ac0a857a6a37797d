import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  AvroCodec,
  RECORD_NAMES,
  SCHEMAS_DIR,
  SCHEMA_FILES,
  assertBackwardCompatible,
  loadSchemaVersions,
} from "../services/shared/wire/codec.ts";
import { FILES, RECORDS_FILE, generateRecordTypes } from "./generate-types.ts";

const versions = loadSchemaVersions();

describe("schemas are the single source of truth", () => {
  it("services/shared/wire/records.ts is exactly what the generator makes (run `npm run gen:types`)", () => {
    expect(readFileSync(RECORDS_FILE, "utf8")).toBe(generateRecordTypes());
  });

  it("the generator and the codec name the same schema files", () => {
    expect(FILES).toEqual(SCHEMA_FILES);
  });

  it("every current schema is snapshotted under schemas/history (copy it to <Name>.vN.avsc when you change it)", () => {
    for (const name of RECORD_NAMES) {
      const current = versions.current.get(name);
      const snapshot = versions.history.find((h) => h.name === name && h.fingerprint === current?.fingerprint);
      expect(snapshot, `${name}: current schema ${current?.fingerprint} has no history snapshot`).toBeDefined();
    }
  });
});

describe("backward compatibility", () => {
  const codec = new AvroCodec(versions);

  for (const old of versions.history) {
    it(`current ${old.name} reads records written with ${old.name}.${old.version}`, () => {
      const current = versions.current.get(old.name);
      if (!current) throw new Error(`no current ${old.name}`);
      assertBackwardCompatible(current, old);
      for (let i = 0; i < 20; i++) {
        const written = Buffer.concat([
          Buffer.from([0xc3, 0x01]),
          Buffer.from(old.fingerprint, "hex"),
          old.type.toBuffer(old.type.random()),
        ]);
        expect(() => codec.decode(old.name, written)).not.toThrow();
      }
    });
  }

  function evolvedSchemas(mutate: (schema: { fields: Record<string, unknown>[] }) => void): string {
    const dir = mkdtempSync(join(tmpdir(), "hashrelay-schemas-"));
    cpSync(SCHEMAS_DIR, dir, { recursive: true });
    const file = join(dir, SCHEMA_FILES.AuditEvent);
    const schema = JSON.parse(readFileSync(file, "utf8")) as { fields: Record<string, unknown>[] };
    mutate(schema);
    writeFileSync(file, JSON.stringify(schema));
    return dir;
  }

  it("an added field with a default is compatible: old records decode with the default filled in", () => {
    const oldCodec = new AvroCodec();
    const dir = evolvedSchemas((s) => s.fields.push({ name: "hostName", type: "string", default: "unknown" }));
    const newCodec = new AvroCodec(loadSchemaVersions(dir));
    const oldBytes = oldCodec.encode("AuditEvent", {
      eventId: "e1",
      at: 1,
      service: "dedup",
      actor: "force-a",
      action: "record.created",
      subjectKind: "record",
      subjectId: "r1",
      revision: null,
      detail: {},
    });
    const decoded = newCodec.decode("AuditEvent", oldBytes);
    expect(decoded.writer.version).toBe("v1");
    expect((decoded.value as unknown as Record<string, unknown>)["hostName"]).toBe("unknown");
  });

  it("an added field without a default is caught as incompatible", () => {
    const dir = evolvedSchemas((s) => s.fields.push({ name: "hostName", type: "string" }));
    const evolved = loadSchemaVersions(dir);
    const current = evolved.current.get("AuditEvent");
    const v1 = evolved.history.find((h) => h.name === "AuditEvent" && h.version === "v1");
    if (!current || !v1) throw new Error("missing versions");
    expect(() => assertBackwardCompatible(current, v1)).toThrow(/cannot read AuditEvent v1/);
  });

  it("a changed field type is caught as incompatible", () => {
    const dir = evolvedSchemas((s) => {
      const at = s.fields.find((f) => f["name"] === "at");
      if (at) at["type"] = "string";
    });
    const evolved = loadSchemaVersions(dir);
    const current = evolved.current.get("AuditEvent");
    const v1 = evolved.history.find((h) => h.name === "AuditEvent" && h.version === "v1");
    if (!current || !v1) throw new Error("missing versions");
    expect(() => assertBackwardCompatible(current, v1)).toThrow(/cannot read/);
  });
});
