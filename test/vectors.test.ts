/**
 * The test vectors of docs/vectors/*.json against the code: every byte string, digest and signature
 * in them, and every draft the force CLI's readers make from the input files, is recomputed here
 * from the committed inputs and must match exactly, and the docs must quote the same values, so
 * neither the docs nor the vectors can drift from what the hub, the force CLI and the partner sink do. Needs nothing running. The vectors are never regenerated here: a difference
 * means a format changed, which needs a new version (see docs/partners.md), not new vectors.
 */
import { createHash, createPrivateKey } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { Readable } from "node:stream";
import { gunzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { recordingS3 } from "./support/recording-s3.ts";
import { EXPORT_WRITES, standInPool } from "./support/stand-in-pool.ts";
import { exportDelta, exportSnapshot } from "../services/distribution/exports.ts";
import type { ExportDeps } from "../services/distribution/exports.ts";
import { canonicalJson, manifestSignatureValid, signManifest } from "../services/shared/wire/snapshot-manifest.ts";
import type { ExportManifest } from "../services/shared/wire/snapshot-manifest.ts";
import { recordRef } from "../services/distribution/feed-writer.ts";
import { CSV_COLUMNS, readCsvDrafts } from "../services/force-cli/formats/csv.ts";
import type { DraftItem } from "../services/force-cli/formats/common.ts";
import { parseSubmissionBatch, submissionFromJson, submissionToJson } from "../services/shared/wire/submission-json.ts";
import { VICS_TO_UK, readVicsDrafts } from "../services/force-cli/formats/vics.ts";
import { SUBMISSION_JSON_SCHEMA } from "../services/ingest/openapi.ts";
import { authenticateRequest } from "../services/ingest/request-auth.ts";
import { signRequest } from "../services/shared/wire/request-signature.ts";
import { validateSubmission } from "../services/shared/wire/submission-validation.ts";
import { HASH_ALGORITHMS } from "../services/shared/wire/hash-algorithms.ts";
import { decode, walkChain } from "../services/partner-sink/chain-walk.ts";
import { parseTrustedHubKeys, verifyFeedRecord } from "../services/partner-sink/verifier.ts";
import { createLogger } from "../services/shared/logging.ts";
import { AvroCodec } from "../services/shared/wire/codec.ts";
import { REPO_ROOT } from "../services/shared/config.ts";
import { HashrelayError } from "../services/shared/errors.ts";
import { GENESIS_DIGEST, feedPartitionOf, feedRecordDigest } from "../services/shared/wire/feed-chain.ts";
import {
  ContentTypeValues,
  GradingStatusValues,
  HashAlgValues,
  IcsCategoryValues,
  SubmissionOpValues,
  UkCategoryValues,
} from "../services/shared/wire/records.ts";
import type { FeedRecord, Submission } from "../services/shared/wire/records.ts";
import { deriveKeyId, rawPublicKey, signRecord, signatureMatches, signingBytes } from "../services/shared/wire/signing.ts";
import type { Unsigned } from "../services/shared/wire/signing.ts";

const read = (path: string) => readFileSync(`${REPO_ROOT}${path}`, "utf8");
const vector = <T>(name: string) => JSON.parse(read(`docs/vectors/${name}`)) as T;
const codec = new AvroCodec();
const silent = createLogger("vectors", "silent");
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

interface KeyVector {
  ownerId: string;
  keyId: string;
  seedHex: string;
  publicKeyHex: string;
  publicKeyBase64: string;
  hubPublicKeysEntry?: string;
}
const keys = vector<{ pkcs8DerPrefixHex: string; agency: KeyVector; hub: KeyVector }>("keys.json");

function privateKeyOf(k: KeyVector): KeyObject {
  return createPrivateKey({ key: Buffer.from(keys.pkcs8DerPrefixHex + k.seedHex, "hex"), format: "der", type: "pkcs8" });
}
const agencyKey = privateKeyOf(keys.agency);
const hubKey = privateKeyOf(keys.hub);

interface SubmissionVector {
  json: Record<string, unknown>;
  httpBody: string;
  domainTag: string;
  signedBytesHex: string;
  signatureBase64: string;
  signatureHex: string;
  writerFingerprintHex: string;
  singleObjectHex: string;
}
const sv = vector<SubmissionVector>("submission.json");

interface FeedRecordVector {
  fields: Record<string, unknown> & { prevDigest: string };
  prevDigestHex: string;
  signedBytesHex: string;
  signatureBase64: string;
  signatureHex: string;
  chainDigestHex: string;
  singleObjectHex: string;
}
interface FeedVector {
  partnerId: string;
  recordRef: { secret: string; recordId: string; hmacInput: string; value: string };
  partitionOf: { alg: string; value: string; feedPartitions: number; sha256Hex: string; partition: number };
  domainTag: string;
  writerFingerprintHex: string;
  records: FeedRecordVector[];
  chainSigned: { records: FeedRecordVector[]; tampered: FeedRecordVector };
}
const fv = vector<FeedVector>("feed-records.json");
const feedRecordOf = (r: FeedRecordVector) =>
  ({
    ...r.fields,
    prevDigest: Buffer.from(r.prevDigestHex, "hex"),
    signature: Buffer.from(r.signatureHex, "hex"),
  }) as unknown as FeedRecord;
const feedRecords: FeedRecord[] = fv.records.map(feedRecordOf);

interface RequestVector {
  method: string;
  path: string;
  timestamp: string;
  body: string;
  bodySha256Hex: string;
  stringToSign: string;
  stringToSignHex: string;
  headers: Record<string, string>;
}
const rv = vector<RequestVector>("request-signature.json");

interface ManifestVector {
  manifestKey: string;
  manifestFile: string;
  signedText: string;
  signedBytesHex: string;
  signatureBase64: string;
  objectKey: string;
  objectGzipBase64: string;
  objectSha256Hex: string;
  lines: string[];
  latestSnapshotKey?: string;
  latestSnapshotFile?: string;
}
const mv = vector<{ snapshot: ManifestVector; delta: ManifestVector }>("snapshot-manifest.json");

interface InputVector {
  submissionIdPrefix: string;
  file: string;
  items: (
    | { index: number; ok: true; draft: unknown; ignoredHashNames?: string[] }
    | { index: number; ok: false; reason: string; original: string }
  )[];
}

/** The file's bytes in chunks of `size`, so that items and rows straddle chunk boundaries. */
function chunked(text: string, size: number): Readable {
  const bytes = Buffer.from(text, "utf8");
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) parts.push(bytes.subarray(i, i + size));
  return Readable.from(parts);
}

async function itemsOf(drafts: AsyncIterable<DraftItem>): Promise<InputVector["items"]> {
  const out: InputVector["items"] = [];
  for await (const item of drafts) {
    if (!item.ok) out.push({ index: item.index, ok: false, reason: item.reason, original: item.original.toString("utf8") });
    else if (item.ignoredHashNames?.length)
      out.push({ index: item.index, ok: true, draft: item.draft, ignoredHashNames: [...item.ignoredHashNames] });
    else out.push({ index: item.index, ok: true, draft: item.draft });
  }
  return out;
}

/** Read when a test asks, so a missing doc fails that test and not the whole file. */
const docs = {
  get forces() {
    return read("docs/forces.md");
  },
  get partners() {
    return read("docs/partners.md");
  },
};

describe("test vectors: keys", () => {
  it("derive the public keys and key ids from the seeds", () => {
    for (const [k, key] of [
      [keys.agency, agencyKey],
      [keys.hub, hubKey],
    ] as const) {
      const pub = rawPublicKey(key);
      expect(pub.toString("hex")).toBe(k.publicKeyHex);
      expect(pub.toString("base64")).toBe(k.publicKeyBase64);
      expect(deriveKeyId(k.ownerId, pub)).toBe(k.keyId);
    }
    expect(keys.hub.hubPublicKeysEntry).toBe(`${keys.hub.keyId}=${keys.hub.publicKeyBase64}`);
  });
});

describe("test vectors: Submission", () => {
  const submission = submissionFromJson(sv.json);
  const writer = codec.schema("Submission");

  it("has the signed bytes, signature and single-object bytes the code produces", () => {
    expect(writer.fingerprint).toBe(sv.writerFingerprintHex);
    const signed = signingBytes("Submission", writer.type, submission);
    expect(hex(signed)).toBe(sv.signedBytesHex);
    expect(signed.subarray(0, sv.domainTag.length).toString("utf8")).toBe(sv.domainTag);
    const { signature: _signature, ...unsigned } = submission;
    const resigned = signRecord("Submission", writer.type, unsigned as Unsigned<Submission>, agencyKey);
    expect(hex(resigned.signature)).toBe(sv.signatureHex);
    expect(Buffer.from(sv.signatureHex, "hex").toString("base64")).toBe(sv.signatureBase64);
    expect(signatureMatches("Submission", writer.type, submission, createPublicKeyOf(keys.agency))).toBe(true);
    const encoded = codec.encode("Submission", submission);
    expect(hex(encoded)).toBe(sv.singleObjectHex);
    expect(codec.decode("Submission", encoded).value).toEqual(submission);
  });

  it("signs the single-object body minus its trailing signature field (2-byte length + 64 bytes)", () => {
    const encoded = Buffer.from(sv.singleObjectHex, "hex");
    expect(encoded.subarray(0, 2).toString("hex")).toBe("c301");
    expect(encoded.subarray(2, 10).toString("hex")).toBe(sv.writerFingerprintHex);
    const body = encoded.subarray(10, encoded.length - 66);
    expect(hex(Buffer.concat([Buffer.from(sv.domainTag), body]))).toBe(sv.signedBytesHex);
    expect(encoded.subarray(encoded.length - 66, encoded.length - 64).toString("hex")).toBe("8001");
  });

  it("is a body the ingest parser and validator accept as it is", () => {
    expect(JSON.stringify(submissionToJson(submission))).toBe(sv.httpBody);
    const items = parseSubmissionBatch(Buffer.from(sv.httpBody));
    expect(items).toHaveLength(1);
    const item = items[0];
    expect(item?.ok).toBe(true);
    if (item?.ok) expect(item.submission).toEqual(submission);
    expect(() => validateSubmission(submission, submission.submittedAt)).not.toThrow();
    for (const body of [`[${sv.httpBody},${sv.httpBody}]`, `${sv.httpBody}\n${sv.httpBody}\n`]) {
      expect(parseSubmissionBatch(Buffer.from(body)).map((i) => i.ok)).toEqual([true, true]);
    }
  });
});

function createPublicKeyOf(k: KeyVector): KeyObject {
  const [trusted] = parseTrustedHubKeys(`${k.keyId}=${k.publicKeyBase64}`);
  if (!trusted) throw new Error("no key");
  return trusted.publicKey;
}

describe("test vectors: FeedRecord chain", () => {
  const writer = codec.schema("FeedRecord");

  it("has the pseudonym and partition the hub computes", () => {
    const r = fv.recordRef;
    expect(r.hmacInput).toBe(`${fv.partnerId}\n${r.recordId}`);
    expect(recordRef(r.secret, fv.partnerId, r.recordId)).toBe(r.value);
    const p = fv.partitionOf;
    expect(createHash("sha256").update(`${p.alg}:${p.value}`).digest("hex")).toBe(p.sha256Hex);
    expect(Buffer.from(p.sha256Hex, "hex").readUInt32BE(0) % p.feedPartitions).toBe(p.partition);
    expect(feedPartitionOf(p.alg, p.value, p.feedPartitions)).toBe(p.partition);
  });

  it("has the signed bytes, signatures, chain digests and single-object bytes the code produces", () => {
    expect(writer.fingerprint).toBe(fv.writerFingerprintHex);
    let prev: Buffer = GENESIS_DIGEST;
    feedRecords.forEach((record, i) => {
      const v = fv.records[i] as FeedVector["records"][number];
      expect(hex(record.prevDigest)).toBe(hex(prev));
      expect(v.fields.prevDigest).toBe(v.prevDigestHex);
      expect(hex(signingBytes("FeedRecord", writer.type, record))).toBe(v.signedBytesHex);
      const { signature: _signature, ...unsigned } = record;
      expect(hex(signRecord("FeedRecord", writer.type, unsigned as Unsigned<FeedRecord>, hubKey).signature)).toBe(v.signatureHex);
      expect(Buffer.from(v.signatureHex, "hex").toString("base64")).toBe(v.signatureBase64);
      const digest = feedRecordDigest(writer.type, record);
      expect(hex(digest)).toBe(v.chainDigestHex);
      expect(createHash("sha256").update(Buffer.from(v.signedBytesHex, "hex")).digest("hex")).toBe(v.chainDigestHex);
      const encoded = codec.encode("FeedRecord", record);
      expect(hex(encoded)).toBe(v.singleObjectHex);
      expect(codec.decode("FeedRecord", encoded).value).toEqual(record);
      prev = digest;
    });
  });

  it("is a chain the partner sink's verifier applies in order", () => {
    const trusted = parseTrustedHubKeys(keys.hub.hubPublicKeysEntry as string);
    let state: { lastSeq: number; lastDigest: Buffer } = { lastSeq: 0, lastDigest: GENESIS_DIGEST };
    for (const v of fv.records) {
      const decoded = codec.decode("FeedRecord", Buffer.from(v.singleObjectHex, "hex"));
      const verdict = verifyFeedRecord(decoded.value, decoded.writer.type, {
        partnerId: fv.partnerId,
        partition: fv.partitionOf.partition,
        keys: trusted,
        state,
        now: new Date(decoded.value.issuedAt),
      });
      expect(verdict.kind).toBe("apply");
      if (verdict.kind === "apply") state = { lastSeq: decoded.value.seq, lastDigest: verdict.digest };
    }
    expect(state.lastSeq).toBe(fv.records.length);
  });
});

describe("test vectors: the chain-signed form", () => {
  const writer = codec.schema("FeedRecord");
  const run = fv.chainSigned.records.map(feedRecordOf);
  const tampered = feedRecordOf(fv.chainSigned.tampered);

  it("continues the chain after seq 3 with the code's bytes; only the last record of the run is signed", () => {
    let prev: Buffer = Buffer.from((fv.records.at(-1) as FeedRecordVector).chainDigestHex, "hex");
    run.forEach((record, i) => {
      const v = fv.chainSigned.records[i] as FeedRecordVector;
      expect(record.seq).toBe(fv.records.length + i + 1);
      expect(hex(record.prevDigest)).toBe(hex(prev));
      expect(hex(signingBytes("FeedRecord", writer.type, record))).toBe(v.signedBytesHex);
      const digest = feedRecordDigest(writer.type, record);
      expect(hex(digest)).toBe(v.chainDigestHex);
      const encoded = codec.encode("FeedRecord", record);
      expect(hex(encoded)).toBe(v.singleObjectHex);
      expect(codec.decode("FeedRecord", encoded).value).toEqual(record);
      const last = i === run.length - 1;
      // The signed bytes are the body before the signature field: 0x80 0x01 + 64 bytes when signed, 0x00 when empty.
      const tail = last ? 66 : 1;
      expect(hex(Buffer.concat([Buffer.from(fv.domainTag), encoded.subarray(10, encoded.length - tail)]))).toBe(v.signedBytesHex);
      expect(encoded.subarray(encoded.length - tail, encoded.length - tail + (last ? 2 : 1)).toString("hex")).toBe(last ? "8001" : "00");
      if (last) {
        const { signature: _signature, ...unsigned } = record;
        expect(hex(signRecord("FeedRecord", writer.type, unsigned as Unsigned<FeedRecord>, hubKey).signature)).toBe(v.signatureHex);
        expect(signatureMatches("FeedRecord", writer.type, record, createPublicKeyOf(keys.hub))).toBe(true);
      } else {
        expect(v.signatureHex).toBe("");
      }
      prev = digest;
    });
    expect(hex(feedRecordDigest(writer.type, tampered))).toBe(fv.chainSigned.tampered.chainDigestHex);
    expect(fv.chainSigned.tampered.chainDigestHex).not.toBe(fv.chainSigned.records[1]?.chainDigestHex);
    expect(hex((run[2] as FeedRecord).prevDigest)).toBe(fv.chainSigned.records[1]?.chainDigestHex);
  });

  it("is a run the partner sink applies after seq 3, and refuses whole with the tampered seq 5", () => {
    const ctx = {
      partnerId: fv.partnerId,
      keys: parseTrustedHubKeys(keys.hub.hubPublicKeysEntry as string),
      logger: silent,
      now: new Date(),
    };
    const state = {
      lastSeq: fv.records.length,
      lastDigest: Buffer.from((fv.records.at(-1) as FeedRecordVector).chainDigestHex, "hex"),
      bootstrapSeq: 0,
      judgedTo: 0,
    };
    const messages = (vs: FeedRecordVector[]) =>
      vs.map((v, i) => decode(codec, { offset: String(i), value: Buffer.from(v.singleObjectHex, "hex") }));
    const p = fv.partitionOf.partition;
    const applied = walkChain(ctx, p, 0, messages(fv.chainSigned.records), state, new Map());
    expect(applied).toMatchObject({ applied: 3, refused: 0, halt: null, lastSeq: 6 });
    expect(hex(applied.lastDigest)).toBe(fv.chainSigned.records[2]?.chainDigestHex);
    const [s4, , s6] = fv.chainSigned.records as [FeedRecordVector, FeedRecordVector, FeedRecordVector];
    const refused = walkChain(ctx, p, 0, messages([s4, fv.chainSigned.tampered, s6]), state, new Map());
    expect(refused).toMatchObject({ applied: 0, lastSeq: 3 });
    expect(refused.alerts.map((a) => [a.seq, a.reason])).toEqual([
      [4, "BAD_SIGNATURE"],
      [5, "BAD_SIGNATURE"],
      [6, "SEQ_GAP"],
    ]);
  });
});

describe("test vectors: HTTP request signature", () => {
  it("has the string to sign and signature the client produces and the hub accepts", async () => {
    const body = Buffer.from(rv.body);
    expect(rv.body).toBe(sv.httpBody);
    expect(createHash("sha256").update(body).digest("hex")).toBe(rv.bodySha256Hex);
    expect(rv.stringToSign).toBe(`hashrelay-request-v1\n${rv.method}\n${rv.path}\n${rv.timestamp}\n${rv.bodySha256Hex}`);
    expect(Buffer.from(rv.stringToSign).toString("hex")).toBe(rv.stringToSignHex);
    const at = new Date(Number(rv.timestamp));
    const headers = signRequest(
      { method: rv.method, path: rv.path, body },
      { agencyId: keys.agency.ownerId, keyId: keys.agency.keyId, privateKey: agencyKey },
      at,
    );
    expect(headers).toEqual(rv.headers);
    const lookup = {
      findKey: async (keyId: string) =>
        keyId === keys.agency.keyId
          ? {
              keyId,
              ownerKind: "agency" as const,
              ownerId: keys.agency.ownerId,
              publicKey: Buffer.from(keys.agency.publicKeyHex, "hex"),
              validFrom: new Date(0),
              validUntil: null,
              revokedAt: null,
            }
          : undefined,
    };
    await expect(authenticateRequest({ method: rv.method, path: rv.path, body, headers: rv.headers }, lookup, at)).resolves.toEqual({
      agencyId: keys.agency.ownerId,
      keyId: keys.agency.keyId,
    });
  });
});

describe("test vectors: S3 snapshot and delta manifests", () => {
  const hubPublic = createPublicKeyOf(keys.hub);

  for (const kind of ["snapshot", "delta"] as const) {
    it(`${kind}: signed text, signature and object digest as the hub writes and the partner checks them`, () => {
      const v = mv[kind];
      const manifest = JSON.parse(v.manifestFile) as ExportManifest;
      expect(JSON.stringify(manifest, null, 2)).toBe(v.manifestFile);
      expect(v.manifestKey).toBe(`${v.objectKey}.manifest.json`);
      const { signature, ...body } = manifest;
      expect(signature).toBe(v.signatureBase64);
      expect(`hashrelay/manifest/v1\n${canonicalJson(body)}`).toBe(v.signedText);
      expect(Buffer.from(v.signedText).toString("hex")).toBe(v.signedBytesHex);
      expect(manifestSignatureValid(manifest, hubPublic)).toBe(true);
      expect(manifestSignatureValid({ ...manifest, count: manifest.count + 1 }, hubPublic)).toBe(false);
      expect(signManifest(body as ExportManifest, hubKey).signature).toBe(v.signatureBase64);
      const object = Buffer.from(v.objectGzipBase64, "base64");
      expect(createHash("sha256").update(object).digest("hex")).toBe(v.objectSha256Hex);
      expect(manifest.sha256).toBe(v.objectSha256Hex);
      expect(manifest.object).toBe(v.objectKey);
      expect(gunzipSync(object).toString("utf8")).toBe(`${v.lines.join("\n")}\n`);
    });
  }

  it("snapshot heads carry the chain digest; delta heads the SHA-256 of the last single-object record", () => {
    const snapshot = JSON.parse(mv.snapshot.manifestFile) as ExportManifest;
    const delta = JSON.parse(mv.delta.manifestFile) as ExportManifest;
    const p = String(fv.partitionOf.partition);
    expect(snapshot.heads[p]).toEqual({ seq: 2, digest: fv.records[1]?.chainDigestHex });
    const last = fv.records[2] as FeedVector["records"][number];
    expect(delta.heads[p]).toEqual({ seq: 3, digest: createHash("sha256").update(Buffer.from(last.singleObjectHex, "hex")).digest("hex") });
    expect(delta.from).toEqual({ [p]: 1 });
    expect(mv.delta.lines.map((l) => hex(Buffer.from((JSON.parse(l) as { record: string }).record, "base64")))).toEqual(
      fv.records.map((r) => r.singleObjectHex),
    );
    expect(JSON.parse(mv.snapshot.latestSnapshotFile as string)).toEqual({ manifest: mv.snapshot.manifestKey });
  });

  it("matches what exports.ts writes for the vector's feed (manifest fields and object lines)", async () => {
    const puts = new Map<string, Buffer>();
    const s3 = recordingS3(puts);
    const held = feedRecords[1] as FeedRecord;
    const answer = (sql: string) => {
      if (sql.includes("FROM feed_outbox")) return { rows: [{ n: "0" }] };
      if (sql.includes("FROM feed_entries")) {
        const e = { alg: held.alg, value: held.value, record_id: fv.recordRef.recordId, revision: held.revision, category: held.category };
        return { rows: [{ ...e, content_type: held.contentType, extra: held.extra }] };
      }
      if (sql.includes("FROM feed_partitions")) {
        return {
          rows: [{ partition: held.partition, last_seq: 2, last_digest: Buffer.from(fv.records[1]?.chainDigestHex as string, "hex") }],
        };
      }
      if (sql.includes("FROM feed_log"))
        return {
          rows: fv.records.map((r) => ({ partition: held.partition, seq: r.fields["seq"], body: Buffer.from(r.singleObjectHex, "hex") })),
        };
      return null;
    };
    const pool = standInPool(answer, EXPORT_WRITES);
    const hub = { keyId: keys.hub.keyId, privateKey: hubKey, pseudonymSecret: fv.recordRef.secret };
    const deps: ExportDeps = { pool, s3, bucket: "hashrelay", hub };
    const offsets = { topic: (p: string) => `feed.${p}.v1`, highWatermarks: async () => ({ [String(held.partition)]: "2" }) };
    const written = {
      snapshot: await exportSnapshot(
        { ...deps, feedOffsets: offsets },
        fv.partnerId,
        new Date((JSON.parse(mv.snapshot.manifestFile) as ExportManifest).createdAt),
      ),
      delta: await exportDelta(deps, fv.partnerId, new Date((JSON.parse(mv.delta.manifestFile) as ExportManifest).createdAt)),
    };
    for (const kind of ["snapshot", "delta"] as const) {
      const v = mv[kind];
      const m = written[kind] as ExportManifest;
      const object = puts.get(m.object) as Buffer;
      // gzip bytes may differ between zlib builds; everything else must not.
      expect(m.sha256).toBe(createHash("sha256").update(object).digest("hex"));
      const { sha256: _s, signature: _sig, ...rest } = m;
      const { sha256: _vs, signature: _vsig, ...expected } = JSON.parse(v.manifestFile) as ExportManifest;
      expect(rest).toEqual(expected);
      expect(gunzipSync(object).toString("utf8")).toBe(`${v.lines.join("\n")}\n`);
      expect(manifestSignatureValid(m, hubPublic)).toBe(true);
    }
    expect(puts.get(mv.snapshot.latestSnapshotKey as string)?.toString("utf8")).toBe(mv.snapshot.latestSnapshotFile);
  });
});

describe("test vectors: force-side input files (the force CLI's readers)", () => {
  it("vics-input.json: the VICS reader makes exactly these drafts and refusals, in one pass or two", async () => {
    const v = vector<InputVector>("vics-input.json");
    const opts = { submissionIdPrefix: v.submissionIdPrefix };
    expect(await itemsOf(readVicsDrafts(() => chunked(v.file, 4096), opts))).toEqual(v.items);
    expect(await itemsOf(readVicsDrafts(chunked(v.file, 7), opts))).toEqual(v.items);
    expect(v.items.map((i) => i.ok)).toEqual([true, true, true, false, false]);
  });

  it("csv-input.json: the CSV reader makes exactly these drafts and refusals", async () => {
    const v = vector<InputVector>("csv-input.json");
    expect(await itemsOf(readCsvDrafts(chunked(v.file, 7), { submissionIdPrefix: v.submissionIdPrefix }))).toEqual(v.items);
    expect(v.items.map((i) => i.ok)).toEqual([true, true, true, false, false]);
  });

  it("every draft is one the hub takes once signed", () => {
    for (const name of ["vics-input.json", "csv-input.json"]) {
      for (const item of vector<InputVector>(name).items) {
        if (!item.ok) continue;
        const submission = {
          ...(item.draft as object),
          agencyId: "vector-force",
          keyId: keys.agency.keyId,
          submittedAt: sv.json["submittedAt"],
        };
        const signed = signRecord("Submission", codec.schema("Submission").type, submission as Unsigned<Submission>, agencyKey);
        expect(() => validateSubmission(signed, signed.submittedAt), `${name} item ${item.index}`).not.toThrow();
      }
    }
  });
});

describe("docs quote the vectors and the code's rules", () => {
  it("docs/forces.md quotes the submission and request vectors and prints the JSON Schema served at /openapi.json", () => {
    for (const value of [
      sv.signatureBase64,
      sv.signedBytesHex,
      sv.singleObjectHex,
      sv.httpBody,
      rv.stringToSign,
      rv.headers["x-hashrelay-signature"] as string,
      keys.agency.seedHex,
      keys.agency.keyId,
      JSON.stringify(SUBMISSION_JSON_SCHEMA, null, 2),
    ]) {
      expect(docs.forces).toContain(value);
    }
  });

  it("docs/forces.md lists every vector file", () => {
    const files = readdirSync(`${REPO_ROOT}docs/vectors`).filter((f) => f.endsWith(".json"));
    expect(files.length).toBeGreaterThan(6);
    for (const f of files) expect(docs.forces).toContain(`\`${f}\``);
  });

  it("docs/partners.md quotes the feed and manifest vectors", () => {
    for (const value of [
      ...fv.records.flatMap((r) => [r.signatureBase64, r.chainDigestHex, r.signedBytesHex]),
      ...fv.chainSigned.records.flatMap((r) => [r.chainDigestHex, r.signedBytesHex, r.singleObjectHex]),
      (fv.chainSigned.records.at(-1) as FeedRecordVector).signatureBase64,
      fv.chainSigned.tampered.chainDigestHex,
      fv.recordRef.value,
      mv.snapshot.signedText,
      mv.snapshot.signatureBase64,
      mv.snapshot.manifestFile,
      mv.delta.signedText,
      mv.delta.signatureBase64,
      keys.hub.seedHex,
      keys.hub.hubPublicKeysEntry as string,
    ]) {
      expect(docs.partners).toContain(value);
    }
  });

  it("docs/forces.md states the VICS category mapping and the CSV columns the readers use", () => {
    for (const [code, uk] of Object.entries(VICS_TO_UK))
      expect(docs.forces).toMatch(new RegExp(`^\\| ${code} [^\\n]*\\| \`${uk}\` \\|`, "m"));
    for (const column of CSV_COLUMNS) expect(docs.forces).toContain(`\`${column}\``);
  });
});

describe("submission JSON Schema (SUBMISSION_JSON_SCHEMA) against the parser's rules", () => {
  const schema = SUBMISSION_JSON_SCHEMA;
  const base = sv.json;
  const accepts = (json: unknown): boolean => {
    try {
      validateSubmission(submissionFromJson(json), (base["submittedAt"] as number) + 1000);
      return true;
    } catch (err) {
      if (err instanceof HashrelayError) return false;
      throw err;
    }
  };
  const decodes = (json: unknown): boolean => {
    try {
      submissionFromJson(json);
      return true;
    } catch (err) {
      if (err instanceof HashrelayError) return false;
      throw err;
    }
  };

  it("has the code's enums", () => {
    expect(schema.properties.op.enum).toEqual(SubmissionOpValues);
    expect(schema.properties.contentType.enum).toEqual(ContentTypeValues);
    expect(schema.properties.gradingStatus.enum).toEqual(GradingStatusValues);
    expect(schema.properties.hashes.items.properties.alg.enum).toEqual(HashAlgValues);
    expect(schema.properties.grade.properties.uk.enum).toEqual(UkCategoryValues);
    expect(schema.properties.grade.properties.ics.enum).toEqual([...IcsCategoryValues, null]);
  });

  it("names exactly the fields the parser accepts, at every level", () => {
    expect(accepts(base)).toBe(true);
    const levels: [string[], (json: Record<string, unknown>, key: string) => Record<string, unknown>][] = [
      [Object.keys(schema.properties), (j, k) => ({ ...j, [k]: j[k] ?? null })],
      [
        Object.keys(schema.properties.hashes.items.properties),
        (j, k) => ({ ...j, hashes: [{ ...(j["hashes"] as object[])[0], [k]: k === "quality" ? null : "x" }] }),
      ],
      [Object.keys(schema.properties.grade.properties), (j, k) => ({ ...j, grade: { ...(j["grade"] as object), [k]: null } })],
      [
        Object.keys(schema.properties.lawEnforcement.oneOf[1].properties),
        (j, k) => ({ ...j, lawEnforcement: { ...(j["lawEnforcement"] as object), [k]: null } }),
      ],
    ];
    for (const [names, withField] of levels) {
      // A field the schema names is not refused as unknown; one it does not name is.
      for (const name of names) expect(decodesOrFailsOnValue(withField(base, name)), name).toBe(true);
      expect(decodes(withField(base, "notAField")), "notAField").toBe(false);
    }
  });

  function decodesOrFailsOnValue(json: unknown): boolean {
    try {
      submissionFromJson(json);
      return true;
    } catch (err) {
      return err instanceof HashrelayError && !err.detail.includes("unknown field");
    }
  }

  it("requires exactly the fields the parser and validator require", () => {
    for (const name of Object.keys(schema.properties)) {
      const { [name]: _dropped, ...without } = base;
      expect(accepts(without), name).toBe(!(schema.required as readonly string[]).includes(name));
    }
    const { ics: _ics, vics: _vics, ...ukOnly } = base["grade"] as Record<string, unknown>;
    expect(decodes({ ...base, grade: ukOnly })).toBe(true);
    expect(decodes({ ...base, grade: {} })).toBe(false);
    expect(decodes({ ...base, hashes: [{ alg: "md5" }] })).toBe(false);
  });

  it("has the code's limits and patterns", () => {
    const hashes = base["hashes"] as { alg: string; value: string }[];
    for (const h of hashes) {
      const rule = schema.properties.hashes.items.allOf.find((r) => r.if.properties.alg.const === h.alg);
      expect(new RegExp(rule?.then.properties.value.pattern as string).test(h.value), h.alg).toBe(true);
      expect(accepts({ ...base, hashes: [{ ...h, value: h.value.toUpperCase() }] }), `${h.alg} upper case`).toBe(false);
    }
    const tooMany = Array.from({ length: schema.properties.hashes.maxItems + 1 }, (_, i) => ({
      alg: "pdq",
      value: createHash("sha256").update(String(i)).digest("hex"),
    }));
    expect(accepts({ ...base, hashes: tooMany })).toBe(false);
    expect(accepts({ ...base, hashes: tooMany.slice(1) })).toBe(true);
    expect(accepts({ ...base, submittedAt: schema.properties.submittedAt.minimum - 1 })).toBe(false);
    const longest = "x".repeat(schema.properties.agencyId.maxLength);
    expect(accepts({ ...base, lawEnforcement: { caseRef: longest } })).toBe(true);
    expect(accepts({ ...base, lawEnforcement: { caseRef: `${longest}x` } })).toBe(false);
    expect(new RegExp(schema.properties.submissionId.pattern).test(base["submissionId"] as string)).toBe(true);
    expect(accepts({ ...base, submissionId: "has space" })).toBe(false);
    expect(new RegExp(schema.properties.signature.pattern).test(base["signature"] as string)).toBe(true);
    const photodna = "A".repeat(192);
    const rule = schema.properties.hashes.items.allOf.find((r) => r.if.properties.alg.const === "photodna");
    expect(new RegExp(rule?.then.properties.value.pattern as string).test(photodna)).toBe(true);
    expect(accepts({ ...base, hashes: [{ alg: "photodna", value: photodna }] })).toBe(true);
    expect(accepts({ ...base, hashes: [{ alg: "md5", value: hashes[0]?.value, quality: 90 }] })).toBe(false);
  });

  it("has the hash-algorithm table's quality ranges, and no quality where the table has none", () => {
    for (const a of HASH_ALGORITHMS) {
      const rule = schema.properties.hashes.items.allOf.find((r) => r.if.properties.alg.const === a.name);
      const bytes = Buffer.alloc(a.bytes, 0x5a);
      const value = a.encoding === "hex" ? bytes.toString("hex") : bytes.toString("base64");
      expect(new RegExp(rule?.then.properties.value.pattern as string).test(value), a.name).toBe(true);
      const withQuality = (quality: number) => ({ ...base, hashes: [{ alg: a.name, value, quality }] });
      if (a.quality === null) {
        expect(rule?.then.properties.quality, a.name).toEqual({ type: "null" });
        expect(accepts(withQuality(0)), a.name).toBe(false);
        continue;
      }
      expect(rule?.then.properties.quality, a.name).toEqual({ minimum: a.quality.min, maximum: a.quality.max });
      expect(accepts(withQuality(a.quality.min)), a.name).toBe(true);
      expect(accepts(withQuality(a.quality.max)), a.name).toBe(true);
      expect(accepts(withQuality(a.quality.min - 1)), a.name).toBe(false);
      expect(accepts(withQuality(a.quality.max + 1)), a.name).toBe(false);
    }
  });
});
