/**
 * The force CLI's send path (submitFile, uploadFile) on VICS files shaped like forensic tools'
 * exports, with a fake hub client and a fake S3 upload: a truncated export sends nothing by
 * default and says so; --allow-partial sends the complete items and still says so.
 */
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { randomHex } from "../../test/support/fixtures.ts";
import type { ImportJob } from "../shared/wire/ingest-api.ts";
import type { Submission } from "../shared/wire/records.ts";
import type { AgencySigner, SubmitResponse } from "./client.ts";
import { EXIT_FILE_REFUSED, exitCodeOf } from "./file-report.ts";
import { submitFile, uploadFile } from "./send.ts";

const dir = mkdtempSync(join(tmpdir(), "hashrelay-send-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const signer: AgencySigner = {
  agencyId: "force-a",
  keyId: "force-a:0123456789abcdef",
  privateKey: generateKeyPairSync("ed25519").privateKey,
};
const V1_CASES = { "odata.metadata": "http://github.com/ICMEC/ProjectVic/DataModels/1.3.xml#Cases" };

/** A Griffeye-style VICS 1.3 Cases export: AlternativeHashes, MimeType, and the case fields after Media. */
function exportText(items: number): string {
  const media = Array.from({ length: items }, (_, i) => ({
    MediaID: i + 1,
    Category: 1,
    MD5: randomHex(16).toUpperCase(),
    MimeType: i === 0 ? "video/mp4" : "image/jpeg",
    AlternativeHashes: [
      { HashName: "SHA-1", HashValue: randomHex(20).toUpperCase() },
      { HashName: "PhotoDNA", HashValue: randomBytes(144).toString("base64") },
      { HashName: "SSDEEP", HashValue: "3:AXGBicFlgVNhBGcL6wCrFQEv:AXGHsNhxLsr2C" },
    ],
    MediaFiles: [{ FileName: `synthetic-${i}.mp4`, FilePath: "C:\\synthetic\\" }],
  }));
  return JSON.stringify({ ...V1_CASES, value: [{ CaseID: "c-1", Media: media, CaseNumber: "SYN-SEND-1" }] });
}

function write(name: string, body: string | Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, body);
  return path;
}

function fakeClient() {
  const batches: Submission[][] = [];
  return {
    batches,
    async submit(subs: readonly Submission[]): Promise<SubmitResponse> {
      batches.push([...subs]);
      const items = subs.map((s, index) => ({ index, submissionId: s.submissionId, status: "accepted" as const }));
      return { status: 200, receipt: { accepted: subs.length, duplicates: 0, rejected: 0, byReason: {} }, items };
    },
  };
}

function fakeHub() {
  const puts: { key: string; lines: string[] }[] = [];
  const imports: string[] = [];
  const job = (key: string, n: number): ImportJob => ({
    importId: "imp-1",
    agencyId: "force-a",
    bucket: "b",
    key,
    status: "done",
    receipt: { accepted: n, duplicates: 0, rejected: 0, byReason: {} },
    receiptKey: `${key}.receipt.json`,
    error: null,
  });
  return {
    puts,
    imports,
    bucket: "b",
    async put(key: string, lines: AsyncIterable<string>) {
      let text = "";
      for await (const line of lines) text += line;
      puts.push({ key, lines: text.split("\n").filter(Boolean) });
    },
    client: {
      async startImport(key: string) {
        imports.push(key);
        return job(key, 0);
      },
      async waitForImport(_id: string, o: { onProgress?: (job: ImportJob) => void } = {}): Promise<ImportJob> {
        const last = puts[puts.length - 1];
        const n = last?.lines.length ?? 0;
        o.onProgress?.({
          ...job(last?.key ?? "", n),
          status: "running",
          linesRead: n,
          bytesRead: 50,
          totalBytes: 100,
          startedAt: "2026-01-01T10:00:00.000Z",
          updatedAt: "2026-01-01T10:00:02.000Z",
        });
        return job(last?.key ?? "", n);
      },
    },
  };
}

const options = (allowPartial: boolean) => ({ format: "vics" as const, prefix: "force-a:send:", allowPartial, agency: "force-a" });

describe("submitFile on VICS exports", () => {
  const text = exportText(3);
  const cut = text.slice(0, text.lastIndexOf("SSDEEP") + 3);

  it("sends a whole export: AlternativeHashes, video, the case number after Media; names the hash it did not read", async () => {
    const client = fakeClient();
    const out: string[] = [];
    const report = await submitFile(
      write("whole.json", text),
      { ...options(false), batch: 500 },
      { signer, client, log: (t) => out.push(t), progress: false },
    );
    const subs = client.batches.flat();
    expect(subs.map((s) => s.contentType)).toEqual(["video", "image", "image"]);
    expect(subs.map((s) => s.hashes.map((h) => h.alg))).toEqual([0, 1, 2].map(() => ["md5", "sha1", "photodna"]));
    expect(subs.map((s) => s.lawEnforcement.caseRef)).toEqual(["SYN-SEND-1", "SYN-SEND-1", "SYN-SEND-1"]);
    expect(report.receipt).toMatchObject({ accepted: 3, rejected: 0 });
    expect(exitCodeOf(report)).toBe(0);
    expect(out.join("\n")).toContain('not read: AlternativeHashes "SSDEEP" on 3 items');
  });

  it("refuses a truncated export whole by default: nothing submitted, exit 3, and it says so plainly", async () => {
    const client = fakeClient();
    const out: string[] = [];
    const file = write("cut.json", cut);
    const report = await submitFile(file, { ...options(false), batch: 1 }, { signer, client, log: (t) => out.push(t), progress: false });
    expect(client.batches).toEqual([]);
    expect(report.sent).toBe(false);
    expect(report.fault).toEqual({ truncated: true, atByte: Buffer.byteLength(cut), completeItems: 2, refusedWhole: true });
    expect(exitCodeOf(report)).toBe(EXIT_FILE_REFUSED);
    const said = out.join("\n");
    expect(said).toMatch(/^nothing submitted from /);
    expect(said).toContain(`FILE TRUNCATED: ${file} ends at byte ${Buffer.byteLength(cut)}, after 2 complete media items`);
    expect(said).toContain("nothing of it was submitted or uploaded");
    expect(said).toContain("--allow-partial");
    const rejected = readFileSync(`${file}.rejected.jsonl`, "utf8").trim().split("\n");
    expect(rejected.map((l) => JSON.parse(l).reason)).toEqual(["MALFORMED_VICS"]);
  });

  it("with --allow-partial sends the complete items and still says the file was truncated", async () => {
    const client = fakeClient();
    const out: string[] = [];
    const report = await submitFile(
      write("cut-partial.json", cut),
      { ...options(true), batch: 500 },
      { signer, client, log: (t) => out.push(t), progress: false },
    );
    expect(client.batches.flat().map((s) => s.submissionId)).toEqual(["force-a:send:1", "force-a:send:2"]);
    expect(report.receipt).toMatchObject({ accepted: 2, rejected: 1, byReason: { MALFORMED_VICS: 1 } });
    expect(report.fault).toMatchObject({ truncated: true, completeItems: 2, refusedWhole: false });
    expect(exitCodeOf(report)).toBe(0);
    expect(out.join("\n")).toMatch(
      /FILE TRUNCATED: .* after 2 complete media items[\s\S]*Only the complete items before that point were sent/,
    );
  });

  it("reads a UTF-16 export with a byte-order mark", async () => {
    const client = fakeClient();
    const body = Buffer.from(`\uFEFF${text}`, "utf16le");
    const report = await submitFile(
      write("utf16.json", body),
      { ...options(false), batch: 500 },
      { signer, client, log: () => {}, progress: false },
    );
    expect(report.receipt.accepted).toBe(3);
  });
});

describe("uploadFile on VICS exports", () => {
  const text = exportText(3);
  const cut = text.slice(0, text.lastIndexOf("PhotoDNA") + 12);

  it("uploads nothing and starts no import for a truncated export", async () => {
    const hub = fakeHub();
    const out: string[] = [];
    const report = await uploadFile(
      write("cut-upload.json", cut),
      { ...options(false), objectKey: "imports/force-a/x.jsonl", wait: true },
      { signer, client: hub.client, bucket: hub.bucket, put: hub.put.bind(hub), log: (t) => out.push(t), progress: false },
    );
    expect(hub.puts).toEqual([]);
    expect(hub.imports).toEqual([]);
    expect(exitCodeOf(report)).toBe(EXIT_FILE_REFUSED);
    expect(out.join("\n")).toMatch(/^nothing uploaded from [\s\S]*FILE TRUNCATED/);
  });

  it("with --allow-partial uploads the complete items and the receipt says the file was truncated", async () => {
    const hub = fakeHub();
    const out: string[] = [];
    const report = await uploadFile(
      write("cut-upload-partial.json", cut),
      { ...options(true), objectKey: "imports/force-a/y.jsonl", wait: true },
      { signer, client: hub.client, bucket: hub.bucket, put: hub.put.bind(hub), log: (t) => out.push(t), progress: false },
    );
    expect(hub.puts.map((p) => p.lines.length)).toEqual([2]);
    expect(hub.imports).toEqual(["imports/force-a/y.jsonl"]);
    expect(report.receipt).toMatchObject({ accepted: 2, rejected: 1 });
    expect(out.join("\n")).toContain("FILE TRUNCATED");
  });

  it("shows the hub's progress while the import runs (a plain line when the output is not a terminal)", async () => {
    const hub = fakeHub();
    const out: string[] = [];
    await uploadFile(
      write("whole-upload.json", text),
      { ...options(false), objectKey: "imports/force-a/z.jsonl", wait: true },
      { signer, client: hub.client, bucket: hub.bucket, put: hub.put.bind(hub), log: (t) => out.push(t), progress: true },
    );
    expect(out).toContain("import imp-1 running: 50% | read 3 | accepted 3 | duplicates 0 | refused 0 | 2 items/s | 2s left");
  });
});
