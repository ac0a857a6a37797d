/**
 * Writes the test vectors in docs/vectors/*.json from fixed, synthetic inputs, using the code that
 * produces these bytes in production (codec, signing, feed chain, request signing, S3 exports).
 * Run it only when a format gains a new version: `node docs/vectors/generate.ts`. The committed
 * files are the reference; test/vectors.test.ts recomputes every value from them and fails on any
 * difference, so regenerating must never be needed to make that test pass. Ed25519 signatures are
 * deterministic, so the same inputs always give the same files (except the gzip bytes, which come
 * from the local zlib and are kept as written).
 *
 * The two keys are derived from fixed strings and are SYNTHETIC AND TEST-ONLY: anyone can
 * recompute their private halves, so never register them anywhere.
 */
import { createHash, createPrivateKey } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import { recordingS3 } from "../../test/support/recording-s3.ts";
import { EXPORT_WRITES, standInPool } from "../../test/support/stand-in-pool.ts";
import { exportDelta, exportSnapshot } from "../../services/distribution/exports.ts";
import { canonicalJson } from "../../services/shared/wire/snapshot-manifest.ts";
import type { ExportDeps } from "../../services/distribution/exports.ts";
import { recordRef } from "../../services/distribution/feed-writer.ts";
import { submissionToJson } from "../../services/shared/wire/submission-json.ts";
import { signRequest } from "../../services/shared/wire/request-signature.ts";
import { AvroCodec } from "../../services/shared/wire/codec.ts";
import { GENESIS_DIGEST, feedPartitionOf, feedRecordDigest } from "../../services/shared/wire/feed-chain.ts";
import type { Pool } from "../../services/shared/postgres.ts";
import type { FeedRecord, Submission } from "../../services/shared/wire/records.ts";
import { deriveKeyId, rawPublicKey, signRecord, signingBytes } from "../../services/shared/wire/signing.ts";
import { FEEDBACK_SIGNING_DOMAIN, feedbackSigningBytes, signFeedback } from "../../services/shared/wire/feedback.ts";
import type { UnsignedFeedback } from "../../services/shared/wire/feedback.ts";
import type { Unsigned } from "../../services/shared/wire/signing.ts";

const OUT = fileURLToPath(new URL("./", import.meta.url));
const codec = new AvroCodec();

/** PKCS#8 DER prefix of an Ed25519 private key; the 32-byte seed follows it. */
const PKCS8_ED25519_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

function keyFromSeed(seed: Buffer): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: "der", type: "pkcs8" });
}

const seedOf = (label: string) => createHash("sha256").update(`hashrelay test vector: ${label} (synthetic, test only)`).digest();
const digestOf = (alg: string, label: string) => createHash(alg).update(`hashrelay synthetic vector ${label}`).digest("hex");

const AGENCY_ID = "vector-force";
const PARTNER_ID = "vector-partner";
const PSEUDONYM_SECRET = "vector-pseudonym-secret-synthetic";
const RECORD_ID = "00000000-0000-4000-8000-000000000001";
const FEED_PARTITIONS = 3;

function write(name: string, value: unknown): void {
  writeFileSync(`${OUT}${name}`, `${JSON.stringify(value, null, 2)}\n`);
  console.log(`wrote docs/vectors/${name}`);
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");

// ---- keys -----------------------------------------------------------------------------------

const agencySeed = seedOf("agency key");
const hubSeed = seedOf("hub key");
const agencyKey = keyFromSeed(agencySeed);
const hubKey = keyFromSeed(hubSeed);
const agencyPublic = rawPublicKey(agencyKey);
const hubPublic = rawPublicKey(hubKey);
const agencyKeyId = deriveKeyId(AGENCY_ID, agencyPublic);
const hubKeyId = deriveKeyId("hub", hubPublic);

write("keys.json", {
  warning: "SYNTHETIC, TEST-ONLY keys: their private halves are public. Never register or trust them anywhere.",
  pkcs8DerPrefixHex: PKCS8_ED25519_PREFIX.toString("hex"),
  agency: {
    ownerId: AGENCY_ID,
    keyId: agencyKeyId,
    seedHex: agencySeed.toString("hex"),
    publicKeyHex: agencyPublic.toString("hex"),
    publicKeyBase64: agencyPublic.toString("base64"),
  },
  hub: {
    ownerId: "hub",
    keyId: hubKeyId,
    seedHex: hubSeed.toString("hex"),
    publicKeyHex: hubPublic.toString("hex"),
    publicKeyBase64: hubPublic.toString("base64"),
    hubPublicKeysEntry: `${hubKeyId}=${hubPublic.toString("base64")}`,
  },
});

// ---- submission -----------------------------------------------------------------------------

const submissionWriter = codec.schema("Submission");
const unsignedSubmission: Unsigned<Submission> = {
  submissionId: `${AGENCY_ID}:0001`,
  agencyId: AGENCY_ID,
  keyId: agencyKeyId,
  op: "ASSERT",
  contentType: "image",
  hashes: [
    { alg: "md5", value: digestOf("md5", "1"), quality: null },
    { alg: "sha1", value: digestOf("sha1", "1"), quality: null },
    { alg: "pdq", value: digestOf("sha256", "pdq 1"), quality: 90 },
  ],
  grade: { uk: "B", ics: "B1", vics: null },
  gradingStatus: "indicative",
  lawEnforcement: {
    caseRef: "SYNTH-CASE-0001",
    series: null,
    victimIdentified: null,
    offenderIdentified: null,
    isDistributed: true,
    graderRef: null,
  },
  submittedAt: Date.UTC(2026, 0, 1, 12, 0, 0),
};
const submission = signRecord("Submission", submissionWriter.type, unsignedSubmission, agencyKey);
const submissionJson = submissionToJson(submission);
const submissionBody = JSON.stringify(submissionJson);
const submissionSigned = signingBytes("Submission", submissionWriter.type, submission);
const submissionEncoded = codec.encode("Submission", submission);

write("submission.json", {
  description: "A Submission signed by the synthetic agency key (keys.json agency).",
  signedBy: "agency",
  json: submissionJson,
  httpBody: submissionBody,
  domainTag: "hashrelay/sig/v1/Submission\n",
  signedBytesHex: hex(submissionSigned),
  signatureBase64: b64(submission.signature),
  signatureHex: hex(submission.signature),
  writerFingerprintHex: submissionWriter.fingerprint,
  singleObjectHex: hex(submissionEncoded),
});

// ---- feed records ---------------------------------------------------------------------------

const feedWriter = codec.schema("FeedRecord");
const feedHash = { alg: "md5" as const, value: submission.hashes[0]?.value as string };
const partition = feedPartitionOf(feedHash.alg, feedHash.value, FEED_PARTITIONS);
const ref = recordRef(PSEUDONYM_SECRET, PARTNER_ID, RECORD_ID);
const issuedAt = Date.UTC(2026, 0, 1, 12, 0, 5);
const changes: { op: string; category: string | null; contentType: string | null; revision: number; extra: Record<string, string> }[] = [
  { op: "UPSERT", category: "B", contentType: "image", revision: 1, extra: { gradingStatus: "indicative" } },
  { op: "UPSERT", category: "A", contentType: "image", revision: 2, extra: { gradingStatus: "confirmed" } },
  { op: "REMOVE", category: null, contentType: null, revision: 3, extra: {} },
];
const feedInputs: Unsigned<FeedRecord>[] = changes.map((c, i) => ({
  partnerId: PARTNER_ID,
  partition,
  seq: i + 1,
  prevDigest: GENESIS_DIGEST,
  op: c.op as FeedRecord["op"],
  alg: feedHash.alg,
  value: feedHash.value,
  category: c.category,
  contentType: c.contentType as FeedRecord["contentType"],
  revision: c.revision,
  recordRef: ref,
  extra: c.extra,
  issuedAt: issuedAt + i * 1000,
  keyId: hubKeyId,
}));
const feedRecords: FeedRecord[] = [];
let prev: Buffer = GENESIS_DIGEST;
for (const input of feedInputs) {
  const record = signRecord("FeedRecord", feedWriter.type, { ...input, prevDigest: prev }, hubKey);
  feedRecords.push(record);
  prev = feedRecordDigest(feedWriter.type, record);
}
function withoutSignature(r: FeedRecord): Unsigned<FeedRecord> {
  const { signature: _signature, ...rest } = r;
  return rest;
}
const feedEncoded = feedRecords.map((r) => codec.encode("FeedRecord", r));
const chainDigests = feedRecords.map((r) => feedRecordDigest(feedWriter.type, r));

// The chain-signed form: three more records of the same partition, continuing the chain after seq
// 3; only the last is signed, the two before it are authenticated by its chain.
const chainChanges: typeof changes = [
  { op: "UPSERT", category: "C", contentType: "image", revision: 4, extra: { gradingStatus: "indicative" } },
  { op: "UPSERT", category: "B", contentType: "image", revision: 5, extra: { gradingStatus: "confirmed" } },
  { op: "UPSERT", category: "A", contentType: "image", revision: 6, extra: { gradingStatus: "confirmed" } },
];
const chainRecords: FeedRecord[] = [];
for (const [i, c] of chainChanges.entries()) {
  const input: Unsigned<FeedRecord> = {
    ...(feedInputs[0] as Unsigned<FeedRecord>),
    seq: feedRecords.length + i + 1,
    prevDigest: prev,
    op: c.op as FeedRecord["op"],
    category: c.category,
    contentType: c.contentType as FeedRecord["contentType"],
    revision: c.revision,
    extra: c.extra,
    issuedAt: issuedAt + 60_000,
  };
  const last = i === chainChanges.length - 1;
  const record = last ? signRecord("FeedRecord", feedWriter.type, input, hubKey) : { ...input, signature: Buffer.alloc(0) };
  chainRecords.push(record);
  prev = feedRecordDigest(feedWriter.type, record);
}
// Seq 5 as someone other than the hub would alter it: its digest is no longer seq 6's prevDigest.
const tamperedRecord: FeedRecord = { ...(chainRecords[1] as FeedRecord), category: "C" };

function feedVector(r: FeedRecord) {
  return {
    fields: { ...withoutSignature(r), prevDigest: hex(r.prevDigest) },
    prevDigestHex: hex(r.prevDigest),
    signedBytesHex: hex(signingBytes("FeedRecord", feedWriter.type, r)),
    signatureBase64: b64(r.signature),
    signatureHex: hex(r.signature),
    chainDigestHex: hex(feedRecordDigest(feedWriter.type, r)),
    singleObjectHex: hex(codec.encode("FeedRecord", r)),
  };
}

write("feed-records.json", {
  description:
    "Three FeedRecords of one partner feed partition, signed by the synthetic hub key (keys.json hub) and chained: " +
    "prevDigest of seq 1 is 32 zero bytes, of seq n+1 the SHA-256 of seq n's signed bytes (chainDigestHex).",
  partnerId: PARTNER_ID,
  recordRef: { secret: PSEUDONYM_SECRET, recordId: RECORD_ID, hmacInput: `${PARTNER_ID}\n${RECORD_ID}`, value: ref },
  partitionOf: {
    alg: feedHash.alg,
    value: feedHash.value,
    feedPartitions: FEED_PARTITIONS,
    sha256Hex: createHash("sha256").update(`${feedHash.alg}:${feedHash.value}`).digest("hex"),
    partition,
  },
  domainTag: "hashrelay/sig/v1/FeedRecord\n",
  writerFingerprintHex: feedWriter.fingerprint,
  records: feedRecords.map(feedVector),
  chainSigned: {
    description:
      "The chain-signed form: seqs 4 to 6 of the same partition, continuing after seq 3 above. Seqs 4 and 5 have an empty " +
      "signature and are authenticated by seq 6, which is signed: seq 6's prevDigest is seq 5's chain digest, and seq 5's " +
      "prevDigest is seq 4's. `tampered` is seq 5 with its category altered: its chain digest is not seq 6's prevDigest, " +
      "so a partner refuses it and applies none of seqs 4 to 6.",
    records: chainRecords.map(feedVector),
    tampered: feedVector(tamperedRecord),
  },
});

// ---- HTTP request signature -----------------------------------------------------------------

const requestAt = Date.UTC(2026, 0, 1, 12, 0, 1);
const requestBody = Buffer.from(submissionBody);
const headers = signRequest(
  { method: "POST", path: "/v1/submissions", body: requestBody },
  { agencyId: AGENCY_ID, keyId: agencyKeyId, privateKey: agencyKey },
  new Date(requestAt),
);
const bodySha256 = createHash("sha256").update(requestBody).digest("hex");
const stringToSign = `hashrelay-request-v1\nPOST\n/v1/submissions\n${requestAt}\n${bodySha256}`;

write("request-signature.json", {
  description: "A signed POST /v1/submissions request by the synthetic agency key; the body is submission.json's httpBody.",
  method: "POST",
  path: "/v1/submissions",
  timestamp: String(requestAt),
  body: submissionBody,
  bodySha256Hex: bodySha256,
  stringToSign,
  stringToSignHex: Buffer.from(stringToSign).toString("hex"),
  headers,
});

// ---- S3 snapshot and delta manifests --------------------------------------------------------

const puts = new Map<string, Buffer>();
const s3 = recordingS3(puts);

/** Answers exports.ts's queries with the vector's state: the feed after seq 2 (snapshot) and seqs 1-3 (delta). */
function fakePool(): Pool {
  const answer = (sql: string) => {
    if (sql.includes("FROM feed_outbox")) return { rows: [{ n: "0" }] };
    if (sql.includes("FROM feed_entries")) {
      const r = feedRecords[1] as FeedRecord;
      return {
        rows: [
          {
            alg: r.alg,
            value: r.value,
            record_id: RECORD_ID,
            revision: r.revision,
            category: r.category,
            content_type: r.contentType,
            extra: r.extra,
          },
        ],
      };
    }
    if (sql.includes("FROM feed_partitions")) return { rows: [{ partition, last_seq: 2, last_digest: chainDigests[1] }] };
    if (sql.includes("FROM feed_log")) return { rows: feedRecords.map((r, i) => ({ partition, seq: r.seq, body: feedEncoded[i] })) };
    return null;
  };
  return standInPool(answer, EXPORT_WRITES);
}

const deps: ExportDeps = {
  pool: fakePool(),
  s3,
  bucket: "hashrelay",
  hub: { keyId: hubKeyId, privateKey: hubKey, pseudonymSecret: PSEUDONYM_SECRET },
  feedOffsets: { topic: (p) => `feed.${p}.v1`, highWatermarks: async () => ({ [String(partition)]: "2" }) },
};
const snapshotAt = new Date(Date.UTC(2026, 0, 1, 12, 0, 10));
const snapshot = await exportSnapshot(deps, PARTNER_ID, snapshotAt);
const deltaAt = new Date(Date.UTC(2026, 0, 1, 12, 1, 0));
const delta = await exportDelta({ ...deps, feedOffsets: undefined } as ExportDeps, PARTNER_ID, deltaAt);
if (!delta) throw new Error("no delta written");

function manifestVector(manifest: typeof snapshot) {
  const key = `${manifest.object}.manifest.json`;
  const { signature: _signature, ...body } = manifest;
  const signedText = `hashrelay/manifest/v1\n${canonicalJson(body)}`;
  const object = puts.get(manifest.object) as Buffer;
  return {
    manifestKey: key,
    manifestFile: (puts.get(key) as Buffer).toString("utf8"),
    signedText,
    signedBytesHex: Buffer.from(signedText).toString("hex"),
    signatureBase64: manifest.signature,
    objectKey: manifest.object,
    objectGzipBase64: object.toString("base64"),
    objectSha256Hex: createHash("sha256").update(object).digest("hex"),
  };
}

const pointerKey = `feeds/${PARTNER_ID}/latest-snapshot.json`;
write("snapshot-manifest.json", {
  description:
    "S3 exports for the feed of feed-records.json, signed by the synthetic hub key: a snapshot taken after seq 2 (its heads digest is " +
    "the chain digest of seq 2) and a delta of seqs 1-3 (its heads digest is the SHA-256 of seq 3's single-object bytes).",
  snapshot: {
    ...manifestVector(snapshot),
    lines: linesOf(puts.get(snapshot.object) as Buffer),
    latestSnapshotKey: pointerKey,
    latestSnapshotFile: (puts.get(pointerKey) as Buffer).toString("utf8"),
  },
  delta: {
    ...manifestVector(delta),
    lines: linesOf(puts.get(delta.object) as Buffer),
  },
});

/** The JSON Lines of a gzip object, as a partner reads them. */
function linesOf(object: Buffer): string[] {
  return gunzipSync(object).toString("utf8").split("\n").filter(Boolean);
}

// ---- partner feedback -----------------------------------------------------------------------

const partnerSeed = seedOf("partner key");
const partnerKey = keyFromSeed(partnerSeed);
const partnerPublic = rawPublicKey(partnerKey);
const partnerKeyId = deriveKeyId(PARTNER_ID, partnerPublic);
const feedbackWriter = codec.schema("PartnerFeedback");
const feedbackRef = recordRef(PSEUDONYM_SECRET, PARTNER_ID, RECORD_ID);
const feedbackVectors = (
  [
    {
      feedbackId: "00000000-0000-4000-8000-00000000f001",
      kind: "MATCHED",
      matchCount: 3,
      timeBucket: "2026-01-02",
      reasonCode: null,
      freeText: null,
    },
    {
      feedbackId: "00000000-0000-4000-8000-00000000f002",
      kind: "FALSE_POSITIVE",
      matchCount: null,
      timeBucket: null,
      reasonCode: "BENIGN_CONTENT",
      freeText: "synthetic note: a benign picture",
    },
  ] as const
).map((v) => {
  const unsigned: UnsignedFeedback = {
    ...v,
    partnerId: PARTNER_ID,
    recordRef: feedbackRef,
    sentAt: Date.UTC(2026, 0, 2, 18, 0, 0),
    keyId: partnerKeyId,
  };
  const signed = signFeedback(feedbackWriter.type, unsigned, partnerKey);
  return {
    record: { ...unsigned, signatureBase64: b64(signed.signature) },
    signedBytesHex: hex(feedbackSigningBytes(feedbackWriter.type, unsigned)),
    signatureHex: hex(signed.signature),
    singleObjectHex: hex(codec.encode("PartnerFeedback", signed)),
  };
});

write("partner-feedback.json", {
  description:
    "PartnerFeedback records signed by the synthetic partner key below (SYNTHETIC, TEST-ONLY: its private half is public), " +
    "about the recordRef of feed-records.json.",
  partnerKey: {
    ownerId: PARTNER_ID,
    keyId: partnerKeyId,
    seedHex: partnerSeed.toString("hex"),
    publicKeyHex: partnerPublic.toString("hex"),
    publicKeyBase64: partnerPublic.toString("base64"),
  },
  domainTag: FEEDBACK_SIGNING_DOMAIN,
  writerFingerprintHex: feedbackWriter.fingerprint,
  records: feedbackVectors,
});
