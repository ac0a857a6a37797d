/**
 * The S3 import's reading of an object, with in-memory ports: exact progress in bytes whatever the
 * line breaks, refusals on the dead-letter sink with the line's original bytes (also bytes that are
 * not UTF-8), and an over-long line refused with only its head kept, without stopping the import.
 */
import { Readable } from "node:stream";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import type { S3Client } from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import { unsignedSubmission } from "../../test/support/fixtures.ts";
import { StaticKeyLookup } from "../shared/key-registry.ts";
import { createLogger } from "../shared/logging.ts";
import type { Queryable } from "../shared/postgres.ts";
import { AvroCodec } from "../shared/wire/codec.ts";
import type { Rejection } from "../shared/wire/records.ts";
import { deriveKeyId, generateSigningKeyPair, privateKeyFromPem, signRecord } from "../shared/wire/signing.ts";
import { submissionToJson } from "../shared/wire/submission-json.ts";
import { ImportService } from "./imports.ts";
import type { IntakeDeps } from "./intake.ts";

const codec = new AvroCodec();
const pair = generateSigningKeyPair();
const keyId = deriveKeyId("force-a", pair.publicKey);
const privateKey = privateKeyFromPem(pair.privateKeyPem);
const keys = new StaticKeyLookup([
  { keyId, ownerKind: "agency", ownerId: "force-a", publicKey: pair.publicKey, validFrom: new Date(0), validUntil: null, revokedAt: null },
]);

const line = () =>
  JSON.stringify(
    submissionToJson(
      signRecord("Submission", codec.schema("Submission").type, unsignedSubmission({ agencyId: "force-a", keyId }), privateKey),
    ),
  );

interface Update {
  status: string;
  accepted: number;
  rejected: number;
  linesRead: number;
  bytesRead: number;
}

/** Runs one import of `chunks` (the object's body as S3 hands it over) to its end. */
async function importObject(chunks: Buffer[], options: { maxLineBytes: number }) {
  const updates: Update[] = [];
  const rejected: Rejection[] = [];
  let accepted = 0;
  const db = {
    async query(sql: string, params: unknown[] = []) {
      if (sql.startsWith("INSERT INTO ingest_imports")) {
        const [import_id, agency_id, bucket, object_key] = params as string[];
        const row = { import_id, agency_id, bucket, object_key, status: "queued", accepted: 0, duplicates: 0, rejected: 0 };
        return { rows: [{ ...row, by_reason: {}, receipt_key: null, error: null, lines_read: 0, bytes_read: 0, updated_at: new Date() }] };
      }
      // setStatus: import id, status, accepted, duplicates, rejected, by reason, lines read, bytes read, ...
      if (/SET status = \$2/.test(sql)) {
        const p = params as [string, string, number, number, number, string, number, number];
        updates.push({ status: p[1], accepted: p[2], rejected: p[4], linesRead: p[6], bytesRead: p[7] });
      }
      return { rows: [], rowCount: 0 };
    },
  } as unknown as Queryable;
  const s3 = {
    async send(cmd: unknown) {
      if (cmd instanceof GetObjectCommand) return { Body: Readable.from(chunks), ContentLength: chunks.reduce((n, c) => n + c.length, 0) };
      return {};
    },
  } as unknown as S3Client;
  const intake: IntakeDeps = {
    codec,
    keys,
    ledger: { lookup: async () => ({ seen: new Map(), firstUse: true }), record: async () => {} },
    sink: {
      async publish(batch) {
        accepted += batch.accepted.length;
        rejected.push(...batch.rejected);
      },
    },
  };
  const service = new ImportService({
    db,
    s3,
    defaultBucket: "hub",
    intake,
    logger: createLogger("ingest", "silent"),
    chunkSize: 2,
    maxLineBytes: options.maxLineBytes,
  });
  await service.start("force-a", "imports/force-a/x.jsonl");
  for (let i = 0; i < 500 && !["done", "failed"].includes(updates.at(-1)?.status ?? ""); i++) await new Promise((r) => setTimeout(r, 10));
  return { updates, rejected, accepted };
}

describe("ImportService reading an object", () => {
  it("counts bytes exactly with CRLF breaks and keeps the original bytes of refused lines", async () => {
    const notUtf8 = Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]); // {"<not UTF-8>"}: no value, so not JSON either
    const lines = [Buffer.from(line()), Buffer.from(""), notUtf8, Buffer.from(line()), Buffer.from("[]"), Buffer.from(line())];
    const body = Buffer.concat(lines.flatMap((l) => [l, Buffer.from("\r\n")]));
    // S3 hands the body over in pieces that cut lines and CRLFs anywhere.
    const chunks = Array.from({ length: Math.ceil(body.length / 97) }, (_, i) => body.subarray(i * 97, (i + 1) * 97));
    const { updates, rejected, accepted } = await importObject(chunks, { maxLineBytes: 1_000_000 });

    expect(accepted).toBe(3);
    expect(rejected.map((r) => r.reason)).toEqual(["MALFORMED_JSON", "INVALID_FIELD"]);
    expect(Buffer.from(rejected[0]?.originalBytes ?? []).equals(notUtf8)).toBe(true);
    expect(Buffer.from(rejected[1]?.originalBytes ?? []).toString()).toBe("[]");
    const done = updates.at(-1);
    expect(done).toMatchObject({ status: "done", accepted: 3, rejected: 2, linesRead: 6, bytesRead: body.length });
    // Mid-run, bytes read are those of the lines read so far, each with its CRLF.
    const ends = lines.map((_, n) => Buffer.concat(lines.slice(0, n + 1).flatMap((l) => [l, Buffer.from("\r\n")])).length);
    const running = updates.filter((u) => u.status === "running");
    expect(running.length).toBeGreaterThan(1);
    for (const u of running) expect(u.bytesRead).toBe(ends[u.linesRead - 1]);
  });

  it("refuses a line over the limit with its first 64 KiB and reads on, also when the object has no line break", async () => {
    const long = Buffer.alloc(3 * 1024 * 1024, 0x20);
    long[0] = 0x7b;
    const first = await importObject([long.subarray(0, 1000), long.subarray(1000), Buffer.from(`\n${line()}\n`)], {
      maxLineBytes: 100_000,
    });
    expect(first.accepted).toBe(1);
    expect(first.rejected.map((r) => [r.reason, r.originalBytes.length])).toEqual([["BODY_TOO_LARGE", 64 * 1024]]);
    expect(first.updates.at(-1)).toMatchObject({ status: "done", linesRead: 2, bytesRead: long.length + line().length + 2 });

    const noBreak = await importObject([long], { maxLineBytes: 100_000 });
    expect(noBreak.updates.at(-1)).toMatchObject({ status: "done", rejected: 1, linesRead: 1, bytesRead: long.length });
  });

  it("holds no more than the line limit of a 64 MiB object without a line break", async () => {
    const piece = Buffer.alloc(64 * 1024, 0x61);
    const chunks = Array.from({ length: 1024 }, () => piece);
    const used = () => process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
    const before = used();
    let peak = before;
    const sampler = setInterval(() => {
      peak = Math.max(peak, used());
    }, 2);
    const { updates } = await importObject(chunks, { maxLineBytes: 100_000 });
    clearInterval(sampler);
    expect(updates.at(-1)).toMatchObject({ status: "done", rejected: 1, linesRead: 1, bytesRead: 64 * 1024 * 1024 });
    // The chunks themselves are one 64 KiB buffer shared by all; a reader that buffered the line would add 64 MiB or more.
    expect(peak - before).toBeLessThan(16 * 1024 * 1024);
  });
});
