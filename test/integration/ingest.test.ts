/**
 * The ingest service against the real stack: HTTP submissions (good, bad, duplicate, unauthenticated,
 * oversize, of a Content-Type the API does not read), VICS and CSV files signed by the force CLI's
 * signer (a truncated UTF-16 VICS export through the CLI's submit path), and an S3 bulk import with
 * its receipt written back to S3. Every rejection must appear on the DLQ with its original bytes.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { servicePrincipal } from "../../services/shared/kafka-access.ts";
import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import type { Kafka } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IngestClient } from "../../services/force-cli/client.ts";
import { signRequest } from "../../services/shared/wire/request-signature.ts";
import type { AgencySigner } from "../../services/force-cli/client.ts";
import type { ImportJob } from "../../services/shared/wire/ingest-api.ts";
import { submissionToJson } from "../../services/shared/wire/submission-json.ts";
import { startIngest } from "../../services/ingest/main.ts";
import type { RunningIngest } from "../../services/ingest/main.ts";
import { readDrafts, signDrafts } from "../../services/force-cli/signer.ts";
import { submitFile } from "../../services/force-cli/send.ts";
import { EXIT_FILE_REFUSED, exitCodeOf } from "../../services/force-cli/file-report.ts";
import { AvroCodec } from "../../services/shared/wire/codec.ts";
import { PgKeyRegistry } from "../../services/shared/key-registry.ts";
import type { Rejection, Submission } from "../../services/shared/wire/records.ts";
import type { TopicNames } from "../../services/shared/topics.ts";
import { addTestKey, registerTestAgency, signedSubmission } from "../support/agencies.ts";
import { randomHex } from "../support/fixtures.ts";
import { readTopic } from "../support/kafka.ts";
import { freshDatabase, freshTopics, kafkaAs, principalEnv, stackEnv, uniqueName, stackS3Client } from "../support/stack.ts";
import type { TestDatabase } from "../support/stack.ts";

const codec = new AvroCodec();
let db: TestDatabase;
let names: TopicNames;
let namespace: string;
let ingest: RunningIngest;
let kafka: Kafka;
let forceA: AgencySigner;
let forceB: AgencySigner;
let client: IngestClient;

beforeAll(async () => {
  const env = stackEnv();
  db = await freshDatabase("ingest");
  ({ names, namespace } = await freshTopics());
  forceA = await registerTestAgency(db.pool, "force-a");
  forceB = await registerTestAgency(db.pool, "force-b");
  ingest = await startIngest({
    KAFKA_BROKERS: env.brokers,
    ...principalEnv(servicePrincipal("ingest")),
    DATABASE_URL: db.url,
    TOPIC_NAMESPACE: namespace,
    LOG_LEVEL: "warn",
    CONSUMER_MAX_BATCH_BYTES: 1_048_576,
    CONSUMER_SESSION_TIMEOUT_MS: 10_000,
    S3_ENDPOINT: env.s3.endpoint,
    S3_REGION: env.s3.region,
    S3_ACCESS_KEY_ID: env.s3.accessKeyId,
    S3_SECRET_ACCESS_KEY: env.s3.secretAccessKey,
    S3_BUCKET: env.s3.bucket,
    INGEST_HOST: "127.0.0.1",
    INGEST_PORT: 0,
    INGEST_BODY_LIMIT_BYTES: 256 * 1024,
    INGEST_MAX_ITEMS_PER_REQUEST: 1000,
  });
  kafka = kafkaAs("test-ingest");
  client = new IngestClient(ingest.url, forceA);
});

afterAll(async () => {
  await ingest?.stop();
  await db?.drop();
});

async function rejectionsFor(predicate: (r: Rejection) => boolean, count: number): Promise<Rejection[]> {
  const messages = await readTopic(
    kafka,
    names.rejected,
    (ms) => ms.map((m) => codec.decode("Rejection", m.value).value).filter(predicate).length >= count,
  );
  return messages.map((m) => codec.decode("Rejection", m.value).value).filter(predicate);
}

async function submittedIds(ids: string[]): Promise<Submission[]> {
  const messages = await readTopic(kafka, names.submitted, (ms) => {
    const seen = new Set(ms.map((m) => codec.decode("Submission", m.value).value.submissionId));
    return ids.every((id) => seen.has(id));
  });
  return messages.map((m) => codec.decode("Submission", m.value).value).filter((s) => ids.includes(s.submissionId));
}

describe("POST /v1/submissions", () => {
  it("accepts good items and rejects each bad one with a reason, keeping the original bytes on the DLQ", async () => {
    const good = signedSubmission(forceA);
    const tampered = { ...signedSubmission(forceA), grade: { uk: "C" as const, ics: null, vics: null } };
    const asOther = signedSubmission(forceB); // force A may not submit force B's records
    const badHash = submissionToJson(signedSubmission(forceA)) as unknown as { hashes: { alg: string; value: string }[] };
    badHash.hashes = [{ alg: "md5", value: "xyz" }];
    const body = Buffer.from(JSON.stringify([submissionToJson(good), submissionToJson(tampered), submissionToJson(asOther), badHash]));

    const res = await client.submitRaw(body);
    expect(res.status).toBe(207);
    expect(res.items.map((i) => i.status)).toEqual(["accepted", "rejected", "rejected", "rejected"]);
    expect(res.items.map((i) => i.reason ?? null)).toEqual([null, "BAD_SIGNATURE", "AGENCY_MISMATCH", "INVALID_HASH"]);
    expect(res.receipt).toMatchObject({ accepted: 1, rejected: 3 });

    const [published] = await submittedIds([good.submissionId]);
    expect(published).toEqual(good);
    const dlq = await rejectionsFor((r) => [tampered.submissionId, asOther.submissionId].includes(r.submissionId ?? ""), 2);
    const tamperedRejection = dlq.find((r) => r.submissionId === tampered.submissionId);
    expect(tamperedRejection?.reason).toBe("BAD_SIGNATURE");
    expect(JSON.parse(tamperedRejection?.originalBytes.toString("utf8") ?? "{}")).toEqual(
      JSON.parse(JSON.stringify(submissionToJson(tampered))),
    );
    const hashRejection = await rejectionsFor((r) => r.reason === "INVALID_HASH" && r.originalBytes.toString().includes('"xyz"'), 1);
    expect(hashRejection[0]?.channel).toBe("http");
  });

  it("answers an identical retry as a duplicate and refuses a reused id with other content", async () => {
    const sub = signedSubmission(forceA);
    expect((await client.submit([sub])).items[0]?.status).toBe("accepted");
    const retry = await client.submit([sub]);
    expect(retry.status).toBe(202);
    expect(retry.items[0]?.status).toBe("duplicate");
    const reused = signedSubmission(forceA, { submissionId: sub.submissionId });
    const conflict = await client.submit([reused]);
    expect(conflict.status).toBe(422);
    expect(conflict.items[0]?.reason).toBe("DUPLICATE_SUBMISSION");
  });

  it("treats a re-signed identical submission as a duplicate (CLI re-run) and refuses stale ones", async () => {
    const first = signedSubmission(forceA, { submittedAt: Date.now() - 5000 });
    expect((await client.submit([first])).items[0]?.status).toBe("accepted");
    const resigned = signedSubmission(forceA, { ...first, submittedAt: Date.now() });
    expect((await client.submit([resigned])).items[0]?.status).toBe("duplicate");
    const stale = signedSubmission(forceA, { submittedAt: Date.now() - 40 * 86_400_000 });
    expect((await client.submit([stale])).items[0]?.reason).toBe("STALE_SUBMISSION");
  });

  it("rejects malformed JSON with MALFORMED_JSON and keeps the bytes", async () => {
    const marker = randomHex(8);
    const res = await client.submitRaw(Buffer.from(`{"submissionId": "${marker}", oops`));
    expect(res.status).toBe(422);
    expect(res.items[0]?.reason).toBe("MALFORMED_JSON");
    const [dlq] = await rejectionsFor((r) => r.originalBytes.toString().includes(marker), 1);
    expect(dlq?.reason).toBe("MALFORMED_JSON");
  });

  it("refuses a body sent as text/plain with 415 UNSUPPORTED_MEDIA_TYPE, keeping its bytes; reads charset=utf-8", async () => {
    const sub = signedSubmission(forceA);
    const body = Buffer.from(JSON.stringify([submissionToJson(sub)]));
    await expect(client.submitRaw(body, "text/plain")).rejects.toMatchObject({ status: 415, reason: "UNSUPPORTED_MEDIA_TYPE" });
    const [dlq] = await rejectionsFor(
      (r) => r.reason === "UNSUPPORTED_MEDIA_TYPE" && r.originalBytes.toString().includes(sub.submissionId),
      1,
    );
    expect(dlq?.originalBytes.equals(body)).toBe(true);
    expect(dlq).toMatchObject({ channel: "http", agencyId: "force-a" });
    expect(dlq?.detail).toMatch(/"text\/plain" is not read by POST \/v1\/submissions; send Content-Type application\/json/);

    const res = await client.submitRaw(body, "application/json; charset=utf-8");
    expect(res.items[0]).toMatchObject({ submissionId: sub.submissionId, status: "accepted" });
  });

  it("refuses bodies over the limit with 413 BODY_TOO_LARGE", async () => {
    await expect(client.submitRaw(Buffer.alloc(300 * 1024, 0x20))).rejects.toMatchObject({ status: 413, reason: "BODY_TOO_LARGE" });
  });
});

describe("agency authentication", () => {
  const body = () => Buffer.from(JSON.stringify([submissionToJson(signedSubmission(forceA))]));

  it("refuses a request without signature headers", async () => {
    const res = await fetch(new URL("/v1/submissions", ingest.url), {
      method: "POST",
      body: body(),
      headers: { "content-type": "application/json" },
    });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { reason: string }).reason).toBe("UNAUTHENTICATED");
  });

  it("refuses force B's key presented as force A, an expired key and a revoked key", async () => {
    const impostor = new IngestClient(ingest.url, { ...forceB, agencyId: "force-a" });
    await expect(impostor.submitRaw(body())).rejects.toMatchObject({ status: 401, reason: "KEY_OWNER_MISMATCH" });

    const expiredKey = await addTestKey(db.pool, "force-a", {
      validFrom: new Date(Date.now() - 7_200_000),
      validUntil: new Date(Date.now() - 3_600_000),
    });
    await expect(new IngestClient(ingest.url, expiredKey).submitRaw(body())).rejects.toMatchObject({ status: 401, reason: "KEY_EXPIRED" });

    const revokedKey = await addTestKey(db.pool, "force-a");
    await new PgKeyRegistry(db.pool).revokeKey(revokedKey.keyId, "test", new Date(Date.now() - 1000));
    await new Promise((r) => setTimeout(r, 2_100)); // the service caches keys for 2 s
    await expect(new IngestClient(ingest.url, revokedKey).submitRaw(body())).rejects.toMatchObject({ status: 401, reason: "KEY_REVOKED" });
  });

  it("refuses a captured request sent again (REQUEST_REPLAYED); the same submissions signed afresh are duplicates", async () => {
    const sub = signedSubmission(forceA);
    const payload = Buffer.from(JSON.stringify([submissionToJson(sub)]));
    const captured = {
      ...signRequest({ method: "POST", path: "/v1/submissions", body: payload }, forceA),
      "content-type": "application/json",
    };
    const send = () => fetch(new URL("/v1/submissions", ingest.url), { method: "POST", body: payload, headers: captured });
    const first = await send();
    expect(first.status).toBe(202);
    const replay = await send();
    expect(replay.status).toBe(401);
    expect(await replay.json()).toMatchObject({ reason: "REQUEST_REPLAYED" });
    // A fresh signature on the same bytes is a new request: idempotency makes it a duplicate.
    const again = await client.submitRaw(payload);
    expect(again.items[0]).toMatchObject({ status: "duplicate" });
    // Both accepted requests are remembered until their timestamps leave the window.
    const { rows } = await db.pool.query<{ n: string }>("SELECT count(*)::text AS n FROM ingest_request_signatures");
    expect(Number(rows[0]?.n)).toBeGreaterThanOrEqual(2);
  });

  it("serves health, readiness, metrics and the OpenAPI description", async () => {
    expect((await fetch(new URL("/healthz", ingest.url))).status).toBe(200);
    expect((await fetch(new URL("/readyz", ingest.url))).status).toBe(200);
    const metrics = await (await fetch(new URL("/metrics", ingest.url))).text();
    expect(metrics).toMatch(/hashrelay_ingest_items_total\{channel="http",status="accepted"/);
    const openapi = (await (await fetch(new URL("/openapi.json", ingest.url))).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(openapi.paths)).toEqual(expect.arrayContaining(["/v1/submissions", "/v1/imports", "/v1/imports/{id}"]));
  });
});

async function* bytes(text: string) {
  yield Buffer.from(text);
}

async function signedFrom(format: "vics" | "csv", text: string) {
  const out: Submission[] = [];
  const bad: string[] = [];
  for await (const item of signDrafts(readDrafts(format, bytes(text), `${uniqueName("file")}:`), forceA)) {
    if (item.ok) out.push(item.submission);
    else bad.push(item.reason);
  }
  return { out, bad };
}

describe("file formats through the force signer and the API", () => {
  it("imports a VICS 2.0 Media file with upper-case MD5, string booleans and a null category", async () => {
    const md5 = randomHex(16).toUpperCase();
    const vics = JSON.stringify({
      "@odata.context": "http://github.com/ICMEC/ProjectVic/DataModels/2.0.xml/US/$metadata#Media",
      value: [
        { MediaID: 1, MD5: md5, SHA1: randomHex(20), Category: 1, IsDistributed: "true", VictimIdentified: "false" },
        { MediaID: 2, MD5: randomHex(16), Category: null },
        { MediaID: 3, MD5: "not-a-hash", Category: 1 },
      ],
    });
    const { out, bad } = await signedFrom("vics", vics);
    expect(out).toHaveLength(2);
    expect(bad).toEqual(["INVALID_HASH"]);
    expect(out[0]?.hashes.find((h) => h.alg === "md5")?.value).toBe(md5.toLowerCase());
    expect(out[0]?.lawEnforcement.isDistributed).toBe(true);
    const res = await client.submit(out);
    expect(res.receipt).toMatchObject({ accepted: 2, rejected: 0 });
  });

  it("imports a CSV with a bad row", async () => {
    const csv = `md5,sha1,category\n${randomHex(16)},${randomHex(20)},A\n${randomHex(16)},,B\nzz,,C\n`;
    const { out, bad } = await signedFrom("csv", csv);
    expect(out).toHaveLength(2);
    expect(bad).toHaveLength(1);
    expect((await client.submit(out)).receipt.accepted).toBe(2);
  });
});

describe("a VICS export through the force CLI's submit path", () => {
  it("refuses a truncated export whole, then with --allow-partial sends its complete items as the tool described them", async () => {
    const dir = mkdtempSync(join(tmpdir(), "hashrelay-cli-"));
    const media = [1, 2, 3].map((id) => ({
      MediaID: id,
      Category: 1,
      MD5: randomHex(16).toUpperCase(),
      MimeType: "video/mp4",
      AlternativeHashes: [
        { HashName: "SHA-256", HashValue: randomHex(32) },
        { HashName: "SSDEEP", HashValue: "3:AXGBicFlgVNhBGcL6wCrFQEv:AXGHsNhxLsr2C" },
      ],
    }));
    const text = JSON.stringify({
      "odata.metadata": "http://github.com/ICMEC/ProjectVic/DataModels/1.3.xml#Cases",
      value: [{ CaseID: "c-1", Media: media, CaseNumber: "SYN-CLI-1" }],
    });
    const file = join(dir, "export.json");
    writeFileSync(file, Buffer.from(`\uFEFF${text.slice(0, text.lastIndexOf("SHA-256"))}`, "utf16le"));
    const prefix = `${uniqueName("cli")}:`;
    const send = async (allowPartial: boolean, idPrefix = prefix) => ({
      prefix: idPrefix,
      ...(await submitFile(
        file,
        { format: "vics", prefix: idPrefix, allowPartial, agency: forceA.agencyId, batch: 500 },
        { signer: forceA, client, log: () => {}, progress: false },
      )),
    });
    try {
      const refused = await send(false);
      expect(refused.sent).toBe(false);
      expect(refused.fault).toMatchObject({ truncated: true, completeItems: 2, refusedWhole: true });
      expect(exitCodeOf(refused)).toBe(EXIT_FILE_REFUSED);

      const partial = await send(true);
      // Accepted, not duplicates: the refused run sent nothing.
      expect(partial.receipt).toMatchObject({ accepted: 2, duplicates: 0, rejected: 1, byReason: { MALFORMED_VICS: 1 } });
      expect(partial.fault).toMatchObject({ truncated: true, completeItems: 2, refusedWhole: false });
      // The cut fell before the case's CaseNumber (written after Media): its CaseID stands.
      const subs = await submittedIds([`${prefix}1`, `${prefix}2`]);
      expect(subs.map((s) => [s.contentType, s.lawEnforcement.caseRef, s.hashes.map((h) => h.alg).join(",")])).toEqual([
        ["video", "c-1", "md5,sha256"],
        ["video", "c-1", "md5,sha256"],
      ]);

      // The whole export: every item, with the CaseNumber that follows the Media array.
      writeFileSync(file, Buffer.from(`\uFEFF${text}`, "utf16le"));
      const whole = await send(false, `${uniqueName("cli")}:`);
      expect(whole.receipt).toMatchObject({ accepted: 3, rejected: 0 });
      expect(whole.ignoredHashNames).toEqual(new Map([["SSDEEP", 3]]));
      const all = await submittedIds([1, 2, 3].map((id) => `${whole.prefix}${id}`));
      expect(all.map((s) => s.lawEnforcement.caseRef)).toEqual(["SYN-CLI-1", "SYN-CLI-1", "SYN-CLI-1"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("S3 bulk import", () => {
  it("imports a JSON Lines object, counts by reason and writes the receipt back to S3", async () => {
    const env = stackEnv();
    const s3 = stackS3Client(env.s3);
    const good = Array.from({ length: 1200 }, () => signedSubmission(forceA));
    const lines = [
      ...good.map((s) => JSON.stringify(submissionToJson(s))),
      "{ not json",
      JSON.stringify(submissionToJson(signedSubmission(forceB))),
      // A line is one object: an array, empty or of two good submissions, is refused, not cut or skipped.
      "[]",
      JSON.stringify([submissionToJson(signedSubmission(forceA)), submissionToJson(signedSubmission(forceA))]),
    ];
    const key = `imports/force-a/${uniqueName("test")}.jsonl`;
    const body = `${lines.join("\n")}\n`;
    await s3.send(new PutObjectCommand({ Bucket: env.s3.bucket, Key: key, Body: body }));

    const job = await client.startImport(key);
    expect(job).toMatchObject({ status: "queued", linesRead: 0, bytesRead: 0, totalBytes: null, startedAt: null });
    // Polled often enough to see the job between chunks (500 lines each) as well as at the end.
    const polled: ImportJob[] = [];
    for (let j = job; j.status === "queued" || j.status === "running"; j = await client.getImport(job.importId)) {
      polled.push(j);
      await new Promise((r) => setTimeout(r, 20));
    }
    const done = await client.waitForImport(job.importId, { timeoutMs: 60_000 });
    expect(done.status).toBe("done");
    expect(done.receipt).toMatchObject({
      accepted: 1200,
      rejected: 4,
      byReason: { MALFORMED_JSON: 1, AGENCY_MISMATCH: 1, INVALID_FIELD: 2 },
    });
    // Progress: the whole object read, and any job polled mid-run agrees with the file up to the line it reached.
    expect(done).toMatchObject({ linesRead: lines.length, bytesRead: Buffer.byteLength(body), totalBytes: Buffer.byteLength(body) });
    expect(Date.parse(done.startedAt ?? "")).toBeLessThanOrEqual(Date.parse(done.updatedAt ?? ""));
    const midRun = polled.filter((p) => p.status === "running");
    expect(midRun.some((j) => (j.linesRead ?? 0) > 0)).toBe(true);
    for (const j of midRun) {
      const n = j.linesRead ?? -1;
      expect(j.totalBytes).toBe(Buffer.byteLength(body));
      expect(j.bytesRead).toBe(Buffer.byteLength(lines.slice(0, n).join("\n")) + (n > 0 ? 1 : 0));
      expect(j.receipt.accepted + j.receipt.duplicates + j.receipt.rejected).toBe(n);
    }

    const receipt = await s3.send(new GetObjectCommand({ Bucket: env.s3.bucket, Key: done.receiptKey ?? "" }));
    const parsed = JSON.parse(await (receipt.Body as { transformToString(): Promise<string> }).transformToString()) as {
      accepted: number;
      rejectedLines: { line: number; reason: string }[];
    };
    expect(parsed.accepted).toBe(1200);
    expect(parsed.rejectedLines.map((l) => [l.line, l.reason])).toEqual([
      [1201, "MALFORMED_JSON"],
      [1202, "AGENCY_MISMATCH"],
      [1203, "INVALID_FIELD"],
      [1204, "INVALID_FIELD"],
    ]);

    // Imports only from the hub bucket and the agency's own prefix.
    await expect(client.startImport(key.replace("imports/force-a/", "imports/force-b/"))).rejects.toMatchObject({
      status: 403,
      reason: "AGENCY_MISMATCH",
    });
    await expect(client.startImport(key, "some-other-bucket")).rejects.toMatchObject({ status: 403 });
    // Another agency cannot see this import.
    await expect(new IngestClient(ingest.url, forceB).getImport(job.importId)).rejects.toMatchObject({ status: 404 });
    await submittedIds(good.slice(0, 5).map((s) => s.submissionId));
  });
});
