/**
 * The force CLI: sign a VICS or CSV export with the agency key and either submit it over HTTP
 * or upload it to S3 for bulk import (send.ts). Prints a progress bar (of the file, then of the
 * hub's import: import-progress.ts) and a final receipt (accepted, duplicates, rejected by reason,
 * and in words a truncated or malformed file: file-report.ts). Items the CLI cannot read are never sent: they are listed with their reason
 * in <file>.rejected.jsonl beside the input, so nothing is silently dropped. A truncated VICS
 * export is refused whole (exit 3, nothing sent) unless --allow-partial.
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { fileURLToPath } from "node:url";
import { Command, InvalidArgumentError, Option } from "commander";
import { loadConfig, s3ConfigShape } from "../shared/config.ts";
import { createS3Client } from "../shared/s3.ts";
import { privateKeyFromPem } from "../shared/wire/signing.ts";
import { IngestClient } from "./client.ts";
import type { AgencySigner } from "./client.ts";
import { exitCodeOf } from "./file-report.ts";
import { s3PutLines } from "./s3-upload.ts";
import type { InputFormat } from "./signer.ts";
import { submitFile, uploadFile } from "./send.ts";
import type { SendOptions } from "./send.ts";

interface CommonOptions {
  format: InputFormat;
  agency: string;
  keyId: string;
  key: string;
  prefix?: string;
  url: string;
  allowPartial?: boolean;
}

/** A commander argument parser that refuses anything but a whole number from 1 up, naming the flag. */
function positiveInteger(flag: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < 1)
      throw new InvalidArgumentError(`${flag} takes a whole number from 1 up, got ${JSON.stringify(value)}`);
    return n;
  };
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

function sendOptions(o: CommonOptions, file: string): SendOptions {
  return { format: o.format, prefix: prefixOf(o, file), allowPartial: o.allowPartial ?? false, agency: o.agency };
}

const log = (text: string) => console.log(text);

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
      .option("--url <url>", "ingest API base URL", process.env["HASHRELAY_INGEST_URL"] ?? "http://127.0.0.1:8080")
      .option("--allow-partial", "VICS: send the complete items of a truncated or malformed file instead of refusing it whole");

  common(program.command("submit <file>").description("sign and submit over HTTP in batches"))
    .option("--batch <n>", "submissions per request", positiveInteger("--batch"), 500)
    .action(async (file: string, o: CommonOptions & { batch: number }) => {
      const signer = signerOf(o);
      const client = new IngestClient(o.url, signer);
      const report = await submitFile(file, { ...sendOptions(o, file), batch: o.batch }, { signer, client, log, progress: true });
      process.exitCode = exitCodeOf(report);
    });

  common(program.command("upload <file>").description("sign, upload to S3 and start a bulk import"))
    .option("--key-name <key>", "S3 object key (default imports/<agency>/<time>-<file>.jsonl)")
    .option("--no-wait", "return once the import is queued")
    .action(async (file: string, o: CommonOptions & { keyName?: string; wait: boolean }) => {
      // Checked up front: a missing credential is named now, not found later as an S3 error.
      const s3Config = loadConfig("hashrelay-ingest", s3ConfigShape);
      const bucket = s3Config.S3_BUCKET;
      const put = s3PutLines(createS3Client(s3Config), bucket);
      const signer = signerOf(o);
      const objectKey = o.keyName ?? `imports/${o.agency}/${Date.now()}-${basename(file)}.jsonl`;
      const report = await uploadFile(
        file,
        { ...sendOptions(o, file), objectKey, wait: o.wait },
        { signer, client: new IngestClient(o.url, signer), bucket, put, log, progress: true },
      );
      process.exitCode = exitCodeOf(report);
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
