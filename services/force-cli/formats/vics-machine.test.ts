/**
 * The scan pass builds no media item: of each element of "value" it keeps only the case fields
 * (CaseNumber, CaseID), and it assembles no nested value, while the items pass builds every item.
 * A white-box check: the assembler module is wrapped to count the properties the machine sets and
 * the values it has assembled (rather than skipped).
 */
import { Readable } from "node:stream";
import { describe, expect, it, vi } from "vitest";
import { randomHex } from "../../../test/support/fixtures.ts";
import type { JsonObject, JsonValueAssemblerOptions } from "./streaming-json-assembler.ts";
import { readVicsDrafts } from "./vics.ts";

const built = vi.hoisted(() => ({ keys: [] as string[], assembled: 0 }));

vi.mock("./streaming-json-assembler.ts", async (importOriginal) => {
  const real = await importOriginal<typeof import("./streaming-json-assembler.ts")>();
  class CountingAssembler extends real.JsonValueAssembler {
    constructor(options: JsonValueAssemblerOptions) {
      super(options);
      if (!options.discard) built.assembled++;
    }
  }
  return {
    ...real,
    JsonValueAssembler: CountingAssembler,
    setOwnProp(obj: JsonObject, key: string, value: unknown) {
      built.keys.push(key);
      real.setOwnProp(obj, key, value);
    },
  };
});

const V2 = "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/Default/$metadata#";

function media(id: number): Record<string, unknown> {
  return {
    MediaID: id,
    Category: 1,
    MD5: randomHex(16),
    SHA1: randomHex(20),
    MediaFiles: [{ FileName: `synthetic-${id}.jpg`, FilePath: "C:\\synthetic\\" }],
    Exifs: { Make: "synthetic" },
  };
}

/** Reads `doc` in two passes, returning what was built during the scan (up to the second open) and during the items pass. */
async function countByPass(doc: string) {
  built.keys.length = 0;
  built.assembled = 0;
  let scan: { keys: string[]; assembled: number } | null = null;
  let opened = 0;
  const open = () => {
    if (opened++ === 1) {
      scan = { keys: [...built.keys], assembled: built.assembled };
      built.keys.length = 0;
      built.assembled = 0;
    }
    return Readable.from([Buffer.from(doc)]);
  };
  const items = [];
  for await (const item of readVicsDrafts(open, { submissionIdPrefix: "p:" })) items.push(item);
  if (!scan) throw new Error("the reader made one pass");
  return { items, scan: scan as { keys: string[]; assembled: number }, itemsPass: { keys: [...built.keys], assembled: built.assembled } };
}

describe("VicsMachine scan pass", () => {
  it("builds no media item of a Media-form export", async () => {
    const doc = JSON.stringify({ "@odata.context": `${V2}Media`, value: [media(1), media(2), media(3)] });
    const { items, scan, itemsPass } = await countByPass(doc);
    expect(items.map((i) => i.ok)).toEqual([true, true, true]);
    expect(scan.keys).toEqual([]);
    expect(scan.assembled).toBe(1); // the @odata.context string only
    expect(itemsPass.keys).toContain("MD5");
    expect(itemsPass.assembled).toBeGreaterThan(3);
  });

  it("keeps only the case fields of a case, before and after its Media array", async () => {
    const doc = JSON.stringify({
      "@odata.context": `${V2}Cases`,
      value: [{ CaseID: "c-1", Contact: { Name: "synthetic" }, Media: [media(1), media(2)], CaseNumber: "SYN-1", Notes: "x" }],
    });
    const { items, scan } = await countByPass(doc);
    expect(items.map((i) => (i.ok ? i.draft.lawEnforcement.caseRef : i.reason))).toEqual(["SYN-1", "SYN-1"]);
    expect(scan.keys).toEqual(["CaseID", "CaseNumber"]);
    expect(scan.assembled).toBe(1);
  });
});
