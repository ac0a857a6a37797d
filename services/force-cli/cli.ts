/**
 * The force CLI: sign a VICS or CSV export with the agency key and either submit it over HTTP
 * or upload it to S3 for bulk import. Prints a progress bar and a final receipt (accepted,
 * duplicates, rejected by reason). Items the CLI cannot read are never sent: they are listed
 * with their reason in <file>.rejected.jsonl beside the input, so nothing is silently dropped.
 */
import { createWriteStream, readFileSync, statSync } from "node:fs";
import { basename } from "node:path";
import { fileURLToPath } from "node:url";
import { Upload } from "@aws-sdk/lib-storage";
import { SingleBar } from "cli-progress";
import { Command, Option } from "commander";
import { createS3Client } from "../shared/s3.ts";
import { privateKeyFromPem } from "../shared/wire/signing.ts";
import type { Submission } from "../shared/wire/records.ts";
import { IngestClient } from "./client.ts";
import type { AgencySigner } from "./client.ts";
import { submissionToJson } from "../shared/wire/submission-json.ts";
import { addToReceipt, emptyReceipt } from "../shared/wire/ingest-api.ts";
import type { Receipt } from "../shared/wire/ingest-api.ts";
import { readDraftFile, signDrafts } from "./signer.ts";
import type { InputFormat, SignedItem } from "./signer.ts";
import { effectiveEnv } from "../shared/config.ts";
import { Readable } from "node:stream";

interface CommonOptions {
  format: InputFormat;
  agency: string;
  keyId: string;
  key: string;
  prefix?: string;
}

function signerOf(o: CommonOptions): AgencySigner {
  return { agencyId: o.agency, keyId: o.keyId, privateKey: privateKeyFromPem(readFileSync(o.key, "utf8")) };
}

function prefixOf(o: CommonOptions, file: string): string {
  // Unique per file and stable across re-runs (idempotency); kept inside the readers' 96-character limit.
  return (
    o.prefix ??
    `${o.agency.slice(0, 30)}:${basename(file)
      .replace(/[^A-Za-z0-9._-]/g, "_")
      .slice(0, 60)}:`
  );
}

function progressBar(file: string): { bar: SingleBar; tick: (original: Buffer) => void } {
  const total = statSync(file).size;
  const bar = new SingleBar({
    format: " {bar} {percentage}% | {items} items | {eta_formatted} left",
    hideCursor: true,
    stream: process.stderr,
    noTTYOutput: false,
  });
  bar.start(total, 0, { items: 0 });
  let bytes = 0;
  let items = 0;
  return {
    bar,
    tick(original: Buffer) {
      bytes += original.length + 1;
      items++;
      if (items % 200 === 0) bar.update(Math.min(bytes, total), { items });
    },
  };
}

function printReceipt(title: string, receipt: Receipt, rejectsFile: string | null): void {
  const lines = [
    `${title}`,
    `  accepted:   ${receipt.accepted}`,
    `  duplicates: ${receipt.duplicates} (already accepted earlier; not sent again)`,
    `  rejected:   ${receipt.rejected}`,
    ...Object.entries(receipt.byReason).map(([reason, n]) => `    ${reason}: ${n}`),
  ];
  if (rejectsFile && receipt.rejected > 0) lines.push(`  rejected items and reasons: ${rejectsFile}`);
  console.log(lines.join("\n"));
}

/** Writes local rejections (unreadable items) and returns their count by reason. */
function rejectLog(file: string) {
  const path = `${file}.rejected.jsonl`;
  const out = createWriteStream(path);
  return {
    path,
    write(item: { index: number; reason: string; detail: string; original?: Buffer; submissionId?: string | null }) {
      out.write(
        `${JSON.stringify({ index: item.index, submissionId: item.submissionId ?? null, reason: item.reason, detail: item.detail, original: item.original?.toString("utf8") })}\n`,
      );
    },
    close: () => new Promise<void>((resolve) => out.end(resolve)),
  };
}

async function submitFile(file: string, o: CommonOptions & { url: string; batch: string }): Promise<Receipt> {
  const client = new IngestClient(o.url, signerOf(o));
  const receipt = emptyReceipt();
  const rejects = rejectLog(file);
  const { bar, tick } = progressBar(file);
  let batch: { index: number; submission: Submission }[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const res = await client.submit(batch.map((b) => b.submission));
    addToReceipt(receipt, res.items);
    res.items.forEach((outcome, i) => {
      if (outcome.status === "rejected") {
        rejects.write({
          index: batch[i]?.index ?? -1,
          submissionId: outcome.submissionId,
          reason: outcome.reason ?? "INTERNAL",
          detail: outcome.detail ?? "",
        });
      }
    });
    batch = [];
  };
  for await (const item of signDrafts(readDraftFile(o.format, file, prefixOf(o, file)), signerOf(o))) {
    tick(item.original);
    if (!item.ok) {
      addToReceipt(receipt, [{ index: item.index, submissionId: null, status: "rejected", reason: item.reason, detail: item.detail }]);
      rejects.write(item);
      continue;
    }
    batch.push({ index: item.index, submission: item.submission });
    if (batch.length >= Number(o.batch)) await flush();
  }
  await flush();
  bar.stop();
  await rejects.close();
  printReceipt(`submitted ${file} as ${o.agency}`, receipt, rejects.path);
  return receipt;
}

/** JSON Lines of signed submissions, streamed; local rejections are counted in `local`. */
async function* signedLines(
  items: AsyncIterable<SignedItem>,
  local: Receipt,
  rejects: ReturnType<typeof rejectLog>,
  tick: (b: Buffer) => void,
) {
  for await (const item of items) {
    tick(item.original);
    if (!item.ok) {
      addToReceipt(local, [{ index: item.index, submissionId: null, status: "rejected", reason: item.reason, detail: item.detail }]);
      rejects.write(item);
      continue;
    }
    yield `${JSON.stringify(submissionToJson(item.submission))}\n`;
  }
}

async function uploadFile(file: string, o: CommonOptions & { url: string; objectKey?: string; wait: boolean }): Promise<Receipt> {
  const env = effectiveEnv();
  const bucket = env["S3_BUCKET"] ?? "hashrelay";
  const s3 = createS3Client({
    S3_ENDPOINT: env["S3_ENDPOINT"],
    S3_REGION: env["S3_REGION"] ?? "us-east-1",
    S3_ACCESS_KEY_ID: env["S3_ACCESS_KEY_ID"] ?? "",
    S3_SECRET_ACCESS_KEY: env["S3_SECRET_ACCESS_KEY"] ?? "",
  });
  const objectKey = o.objectKey ?? `imports/${o.agency}/${Date.now()}-${basename(file)}.jsonl`;
  const local = emptyReceipt();
  const rejects = rejectLog(file);
  const { bar, tick } = progressBar(file);
  const body = Readable.from(signedLines(signDrafts(readDraftFile(o.format, file, prefixOf(o, file)), signerOf(o)), local, rejects, tick));
  await new Upload({ client: s3, params: { Bucket: bucket, Key: objectKey, Body: body, ContentType: "application/x-ndjson" } }).done();
  bar.stop();
  await rejects.close();
  console.log(`uploaded s3://${bucket}/${objectKey}`);
  const client = new IngestClient(o.url, signerOf(o));
  const job = await client.startImport(objectKey, bucket);
  console.log(`import ${job.importId} queued`);
  if (!o.wait) return local;
  const done = await client.waitForImport(job.importId);
  const receipt: Receipt = {
    accepted: done.receipt.accepted,
    duplicates: done.receipt.duplicates,
    rejected: done.receipt.rejected + local.rejected,
    byReason: { ...done.receipt.byReason },
  };
  for (const [reason, n] of Object.entries(local.byReason)) {
    const r = reason as keyof Receipt["byReason"];
    receipt.byReason[r] = (receipt.byReason[r] ?? 0) + (n ?? 0);
  }
  printReceipt(
    `import ${done.importId} ${done.status}${done.error ? ` (${done.error})` : ""}; hub receipt: s3://${bucket}/${done.receiptKey ?? "-"}`,
    receipt,
    rejects.path,
  );
  return receipt;
}

export function buildForceCli(): Command {
  const program = new Command("hashrelay-ingest")
    .description("submit hash records to the hashrelay hub as a force or the NCA")
    .showHelpAfterError();
  const common = (cmd: Command) =>
    cmd
      .addOption(new Option("--format <format>", "input file format").choices(["vics", "csv"]).makeOptionMandatory())
      .requiredOption("--agency <id>", "your agency id as registered at the hub")
      .requiredOption("--key-id <id>", "your registered signing key id")
      .requiredOption("--key <file>", "your Ed25519 private key (PEM)")
      .option("--prefix <text>", "submission id prefix (default: <agency>:<file name>:)")
      .option("--url <url>", "ingest API base URL", process.env["HASHRELAY_INGEST_URL"] ?? "http://127.0.0.1:8080");

  common(program.command("submit <file>").description("sign and submit over HTTP in batches"))
    .option("--batch <n>", "submissions per request", "500")
    .action(async (file: string, o: CommonOptions & { url: string; batch: string }) => {
      const r = await submitFile(file, o);
      if (r.accepted + r.duplicates === 0 && r.rejected > 0) process.exitCode = 2;
    });

  common(program.command("upload <file>").description("sign, upload to S3 and start a bulk import"))
    .option("--key-name <key>", "S3 object key (default imports/<agency>/<time>-<file>.jsonl)")
    .option("--no-wait", "return once the import is queued")
    .action(async (file: string, o: CommonOptions & { url: string; keyName?: string; wait: boolean }) => {
      await uploadFile(file, { ...o, ...(o.keyName ? { objectKey: o.keyName } : {}) });
    });

  return program;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  buildForceCli()
    .parseAsync(process.argv)
    .catch((err: unknown) => {
      const e = err as Error & { reason?: string };
      console.error(`hashrelay-ingest: ${e.reason ? `[${e.reason}] ` : ""}${e.message}`);
      process.exitCode = 1;
    });
}
