/**
 * Force side: turns drafts read from a VICS, CSV or JSON file into signed submissions.
 * Streaming in, streaming out: a file of any size is signed in bounded memory.
 */
import { createReadStream } from "node:fs";
import { AvroCodec } from "../shared/wire/codec.ts";
import type { ReasonCode } from "../shared/errors.ts";
import type { Submission } from "../shared/wire/records.ts";
import { signRecord } from "../shared/wire/signing.ts";
import type { AgencySigner } from "./client.ts";
import type { ByteSource, DraftItem } from "./formats/common.ts";
import { readCsvDrafts } from "./formats/csv.ts";
import { readVicsDrafts } from "./formats/vics.ts";

export type InputFormat = "vics" | "csv";

export type SignedItem =
  | { readonly index: number; readonly ok: true; readonly submission: Submission; readonly original: Buffer }
  | { readonly index: number; readonly ok: false; readonly reason: ReasonCode; readonly detail: string; readonly original: Buffer };

export function readDrafts(format: InputFormat, source: ByteSource, submissionIdPrefix: string): AsyncIterable<DraftItem> {
  return format === "vics" ? readVicsDrafts(source, { submissionIdPrefix }) : readCsvDrafts(source, { submissionIdPrefix });
}

export function readDraftFile(format: InputFormat, path: string, submissionIdPrefix: string): AsyncIterable<DraftItem> {
  return readDrafts(format, createReadStream(path), submissionIdPrefix);
}

const codec = new AvroCodec();

export async function* signDrafts(
  items: AsyncIterable<DraftItem>,
  signer: AgencySigner,
  now: () => number = Date.now,
): AsyncGenerator<SignedItem> {
  const writer = codec.schema("Submission").type;
  for await (const item of items) {
    if (!item.ok) {
      yield item;
      continue;
    }
    const submission = signRecord(
      "Submission",
      writer,
      { ...item.draft, agencyId: signer.agencyId, keyId: signer.keyId, submittedAt: now() },
      signer.privateKey,
    );
    yield { index: item.index, ok: true, submission, original: item.original };
  }
}
