/**
 * Force side: turns drafts read from a VICS, CSV or JSON file into signed submissions.
 * Streaming in, streaming out: a file of any size is signed in bounded memory.
 */
import { createReadStream } from "node:fs";
import { AvroCodec } from "../shared/wire/codec.ts";
import type { Submission } from "../shared/wire/records.ts";
import { signRecord } from "../shared/wire/signing.ts";
import type { AgencySigner } from "./client.ts";
import type { ByteSource, DraftItem } from "./formats/common.ts";
import { readCsvDrafts } from "./formats/csv.ts";
import { readVicsDrafts } from "./formats/vics.ts";

export type InputFormat = "vics" | "csv";

export type SignedItem =
  | {
      readonly index: number;
      readonly ok: true;
      readonly submission: Submission;
      readonly original: Buffer;
      readonly ignoredHashNames?: readonly string[];
    }
  | Extract<DraftItem, { ok: false }>;

export interface ReadOptions {
  /** VICS: take the complete items of a truncated or malformed file instead of refusing it whole. */
  readonly allowPartial?: boolean;
}

export function readDrafts(format: InputFormat, source: ByteSource, submissionIdPrefix: string): AsyncIterable<DraftItem> {
  return format === "vics" ? readVicsDrafts(source, { submissionIdPrefix }) : readCsvDrafts(source, { submissionIdPrefix });
}

/**
 * The drafts of a file. A VICS file is read twice (readVicsDrafts with a re-opener): case fields
 * after a Media array apply, and a file fault refuses the file whole unless allowPartial.
 */
export function readDraftFile(
  format: InputFormat,
  path: string,
  submissionIdPrefix: string,
  opts: ReadOptions = {},
): AsyncIterable<DraftItem> {
  if (format === "vics") return readVicsDrafts(() => createReadStream(path), { submissionIdPrefix, partial: opts.allowPartial ?? false });
  return readCsvDrafts(createReadStream(path), { submissionIdPrefix });
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
    yield item.ignoredHashNames
      ? { index: item.index, ok: true, submission, original: item.original, ignoredHashNames: item.ignoredHashNames }
      : { index: item.index, ok: true, submission, original: item.original };
  }
}
