/**
 * The force CLI's two ways of sending a file: `submit` (signed batches over HTTP) and `upload`
 * (signed JSON Lines to S3, then a bulk import, showing the hub's progress while it runs). The hub
 * client, the S3 upload and the output are injected, so tests run the same path against fakes or
 * the real stack.
 *
 * Invariants: items the CLI cannot read are never sent; each is written with its reason to
 * <file>.rejected.jsonl beside the input. A file the reader refuses whole (a truncated VICS
 * export, by default) sends nothing: no batch is posted and no object is uploaded. Memory does not
 * grow with the file: items are pulled one at a time from the reader through the signer into a
 * batch (submit) or the upload's part buffers (upload), and the rejects file is written as it goes.
 */
import { once } from "node:events";
import { createWriteStream, statSync } from "node:fs";
import { SingleBar } from "cli-progress";
import { addToReceipt } from "../shared/wire/ingest-api.ts";
import type { ImportJob } from "../shared/wire/ingest-api.ts";
import type { Submission } from "../shared/wire/records.ts";
import { submissionToJson } from "../shared/wire/submission-json.ts";
import type { AgencySigner, IngestClient } from "./client.ts";
import { newReport, noteItem, reportText } from "./file-report.ts";
import { importProgress } from "./import-progress.ts";
import type { FileReport } from "./file-report.ts";
import type { PutLines } from "./s3-upload.ts";
import { readDraftFile, signDrafts } from "./signer.ts";
import type { InputFormat, SignedItem } from "./signer.ts";

export interface SendOptions {
  readonly format: InputFormat;
  /** Submission id prefix, unique per file. */
  readonly prefix: string;
  readonly allowPartial: boolean;
  readonly agency: string;
}

export interface SendDeps {
  readonly signer: AgencySigner;
  /** Where the receipt and messages go (the terminal). */
  readonly log: (text: string) => void;
  /** Show a progress bar on stderr. */
  readonly progress: boolean;
}

function progressBar(file: string, show: boolean): { stop: () => void; tick: (original: Buffer) => void } {
  if (!show) return { stop: () => {}, tick: () => {} };
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
    stop: () => bar.stop(),
    tick(original: Buffer) {
      bytes += original.length + 1;
      items++;
      if (items % 200 === 0) bar.update(Math.min(bytes, total), { items });
    },
  };
}

/** Writes local rejections (unreadable items) beside the input; a write waits while the disk is behind, so none pile up in memory. */
function rejectLog(file: string) {
  const path = `${file}.rejected.jsonl`;
  const out = createWriteStream(path);
  return {
    path,
    async write(item: { index: number; reason: string; detail: string; original?: Buffer; submissionId?: string | null }) {
      const line = `${JSON.stringify({ index: item.index, submissionId: item.submissionId ?? null, reason: item.reason, detail: item.detail, original: item.original?.toString("utf8") })}\n`;
      if (!out.write(line)) await once(out, "drain");
    },
    close: () => new Promise<void>((resolve) => out.end(resolve)),
  };
}

type RejectLog = ReturnType<typeof rejectLog>;

/** The signed items of a file, each noted in the report (and a local refusal logged) as it passes. */
async function* readSigned(
  file: string,
  o: SendOptions,
  deps: SendDeps,
  report: FileReport,
  rejects: RejectLog,
  tick: (b: Buffer) => void,
) {
  for await (const item of signDrafts(readDraftFile(o.format, file, o.prefix, { allowPartial: o.allowPartial }), deps.signer)) {
    tick(item.original);
    noteItem(report, item);
    if (!item.ok) await rejects.write(item);
    yield item;
  }
}

export async function submitFile(
  file: string,
  o: SendOptions & { readonly batch: number },
  deps: SendDeps & { readonly client: Pick<IngestClient, "submit"> },
): Promise<FileReport> {
  const report = newReport(file);
  const rejects = rejectLog(file);
  const bar = progressBar(file, deps.progress);
  let batch: { index: number; submission: Submission }[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    report.sent = true;
    const res = await deps.client.submit(batch.map((b) => b.submission));
    addToReceipt(report.receipt, res.items);
    for (const [i, outcome] of res.items.entries()) {
      if (outcome.status === "rejected") {
        await rejects.write({
          index: batch[i]?.index ?? -1,
          submissionId: outcome.submissionId,
          reason: outcome.reason ?? "INTERNAL",
          detail: outcome.detail ?? "",
        });
      }
    }
    batch = [];
  };
  for await (const item of readSigned(file, o, deps, report, rejects, bar.tick)) {
    if (!item.ok) continue;
    batch.push({ index: item.index, submission: item.submission });
    if (batch.length >= o.batch) await flush();
  }
  await flush();
  bar.stop();
  await rejects.close();
  const title = report.fault?.refusedWhole ? `nothing submitted from ${file}` : `submitted ${file} as ${o.agency}`;
  deps.log(reportText(title, report, rejects.path));
  return report;
}

/** JSON Lines of the ok items, starting with `first` when it is one. */
async function* jsonLines(first: SignedItem | undefined, rest: AsyncIterator<SignedItem>) {
  let item = first;
  while (item) {
    if (item.ok) yield `${JSON.stringify(submissionToJson(item.submission))}\n`;
    const next = await rest.next();
    item = next.done ? undefined : next.value;
  }
}

export interface UploadDeps extends SendDeps {
  readonly client: Pick<IngestClient, "startImport" | "waitForImport">;
  readonly bucket: string;
  /** Stores the JSON Lines at `key` in the hub bucket, reading them as it goes (s3-upload.ts). */
  readonly put: PutLines;
}

export async function uploadFile(
  file: string,
  o: SendOptions & { readonly objectKey: string; readonly wait: boolean },
  deps: UploadDeps,
): Promise<FileReport> {
  const report = newReport(file);
  const rejects = rejectLog(file);
  const bar = progressBar(file, deps.progress);
  const items = readSigned(file, o, deps, report, rejects, bar.tick);
  // The first item decides: a file refused whole is not uploaded at all (not even empty).
  const first = await items.next();
  if (!first.done && !first.value.ok && first.value.fileFault?.refusedWhole) {
    await items.return(undefined);
    bar.stop();
    await rejects.close();
    deps.log(reportText(`nothing uploaded from ${file}`, report, rejects.path));
    return report;
  }
  report.sent = true;
  await deps.put(o.objectKey, jsonLines(first.done ? undefined : first.value, items));
  bar.stop();
  await rejects.close();
  deps.log(`uploaded s3://${deps.bucket}/${o.objectKey}`);
  const job = await deps.client.startImport(o.objectKey, deps.bucket);
  deps.log(`import ${job.importId} queued`);
  if (!o.wait) {
    deps.log(reportText(`read ${file} (the hub's receipt comes when the import is done)`, report, rejects.path));
    return report;
  }
  // The hub's progress while it imports: a bar on a terminal, a plain line every few seconds in a log.
  const watch = deps.progress ? importProgress({ interactive: process.stdout.isTTY === true, log: deps.log }) : undefined;
  const done: ImportJob = await deps.client
    .waitForImport(job.importId, { ...(watch ? { onProgress: watch.update } : {}) })
    .finally(() => watch?.stop());
  const local = report.receipt;
  report.receipt = {
    accepted: done.receipt.accepted,
    duplicates: done.receipt.duplicates,
    rejected: done.receipt.rejected + local.rejected,
    byReason: { ...done.receipt.byReason },
  };
  for (const [reason, n] of Object.entries(local.byReason)) {
    const r = reason as keyof typeof local.byReason;
    report.receipt.byReason[r] = (report.receipt.byReason[r] ?? 0) + (n ?? 0);
  }
  const title = `import ${done.importId} ${done.status}${done.error ? ` (${done.error})` : ""}; hub receipt: s3://${deps.bucket}/${done.receiptKey ?? "-"}`;
  deps.log(reportText(title, report, rejects.path));
  return report;
}
