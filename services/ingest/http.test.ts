/**
 * The ingest API's refusals at the edge, through fastify's inject with in-memory ports: a body is
 * read only under a Content-Type its route names (else 415 UNSUPPORTED_MEDIA_TYPE, a submissions
 * body kept on the dead-letter sink with its original bytes), and authentication comes first, so an
 * unauthenticated caller learns nothing about the body or its type.
 */
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import type { FastifyInstance } from "fastify";
import { StaticKeyLookup } from "../shared/key-registry.ts";
import { createLogger } from "../shared/logging.ts";
import { AvroCodec } from "../shared/wire/codec.ts";
import type { ImportJob } from "../shared/wire/ingest-api.ts";
import type { Rejection, Submission } from "../shared/wire/records.ts";
import { signRequest } from "../shared/wire/request-signature.ts";
import { submissionToJson } from "../shared/wire/submission-json.ts";
import { deriveKeyId, generateSigningKeyPair, privateKeyFromPem, signRecord } from "../shared/wire/signing.ts";
import { unsignedSubmission } from "../../test/support/fixtures.ts";
import { buildIngestApi } from "./http.ts";
import type { ImportService } from "./imports.ts";
import type { IntakeSink, SubmissionLedger } from "./intake.ts";
import { ACCEPTED_MEDIA_TYPES } from "./media-type.ts";
import { createIngestMetrics } from "./metrics.ts";

const codec = new AvroCodec();
const pair = generateSigningKeyPair();
const keyId = deriveKeyId("force-a", pair.publicKey);
const signer = { agencyId: "force-a", keyId, privateKey: privateKeyFromPem(pair.privateKeyPem) };
const keys = new StaticKeyLookup([
  { keyId, ownerKind: "agency", ownerId: "force-a", publicKey: pair.publicKey, validFrom: new Date(0), validUntil: null, revokedAt: null },
]);

const published: { accepted: Submission[]; rejected: Rejection[] } = { accepted: [], rejected: [] };
const sink: IntakeSink = {
  async publish(batch) {
    published.accepted.push(...batch.accepted.map((a) => a.submission));
    published.rejected.push(...batch.rejected);
  },
};
const ledger: SubmissionLedger = { lookup: async () => ({ seen: new Map(), firstUse: true }), record: async () => {} };
const importsStarted: string[] = [];
const imports = {
  bucket: "hub",
  async start(agencyId: string, key: string): Promise<ImportJob> {
    importsStarted.push(key);
    const receipt = { accepted: 0, duplicates: 0, rejected: 0, byReason: {} };
    return { importId: "import-1", agencyId, bucket: "hub", key, status: "queued", receipt, receiptKey: null, error: null };
  },
} as unknown as ImportService;

const app: FastifyInstance = buildIngestApi({
  intake: { codec, keys, ledger, sink },
  keys,
  imports,
  metrics: createIngestMetrics(),
  logger: createLogger("ingest", "silent"),
  bodyLimitBytes: 1024 * 1024,
  maxItemsPerRequest: 100,
  ready: async () => {},
});

afterAll(() => app.close());
beforeEach(() => {
  published.accepted.length = 0;
  published.rejected.length = 0;
  importsStarted.length = 0;
});

function submission(): Submission {
  return signRecord("Submission", codec.schema("Submission").type, unsignedSubmission({ agencyId: "force-a", keyId }), signer.privateKey);
}

/** A signed POST; `contentType` undefined sends no Content-Type header at all. */
function post(path: string, body: Buffer, contentType: string | undefined, sign: typeof signer = signer) {
  const headers: Record<string, string> = { ...signRequest({ method: "POST", path, body }, sign) };
  if (contentType !== undefined) headers["content-type"] = contentType;
  return app.inject({ method: "POST", url: path, headers, payload: body });
}

const jsonBody = (sub: Submission = submission()) => Buffer.from(JSON.stringify([submissionToJson(sub)]));

describe("POST /v1/submissions: Content-Type", () => {
  it.each([
    ["text/plain", /"text\/plain" is not read/],
    ["multipart/form-data; boundary=----x", /"multipart\/form-data" is not read/],
    ["application/xml", /"application\/xml" is not read/],
    ["application/x-www-form-urlencoded", /"application\/x-www-form-urlencoded" is not read/],
    [undefined, /needs a Content-Type header/],
    ["application/json; charset=latin1", /charset "latin1" is not read.*UTF-8/],
    ["application/json; charset=utf-16", /charset "utf-16" is not read/],
  ])("refuses %s with 415 UNSUPPORTED_MEDIA_TYPE, naming what it reads, and dead-letters the exact bytes", async (type, says) => {
    const body = jsonBody();
    const res = await post("/v1/submissions", body, type);
    expect(res.statusCode).toBe(415);
    const answer = res.json<{ reason: string; error: string }>();
    expect(answer.reason).toBe("UNSUPPORTED_MEDIA_TYPE");
    expect(answer.error).toMatch(says);
    expect(answer.error).toContain("application/json, application/x-ndjson, application/jsonl");
    expect(published.accepted).toEqual([]);
    expect(published.rejected).toHaveLength(1);
    expect(published.rejected[0]).toMatchObject({ reason: "UNSUPPORTED_MEDIA_TYPE", channel: "http", agencyId: "force-a" });
    expect(published.rejected[0]?.originalBytes.equals(body)).toBe(true);
  });

  it.each([
    "application/json",
    "application/json; charset=utf-8",
    'Application/JSON; Charset="UTF-8"',
    "application/json;charset=utf8",
    "application/x-ndjson",
    "application/jsonl; charset=utf-8",
  ])("reads %s", async (type) => {
    const sub = submission();
    const res = await post("/v1/submissions", jsonBody(sub), type);
    expect(res.statusCode).toBe(202);
    expect(published.accepted.map((s) => s.submissionId)).toEqual([sub.submissionId]);
  });

  it("still answers a JSON body that is not JSON with 422 MALFORMED_JSON", async () => {
    const res = await post("/v1/submissions", Buffer.from("{ oops"), "application/json");
    expect(res.statusCode).toBe(422);
    expect(published.rejected.map((r) => r.reason)).toEqual(["MALFORMED_JSON"]);
  });
});

describe("POST /v1/imports: Content-Type", () => {
  const body = Buffer.from(JSON.stringify({ key: "imports/force-a/file.jsonl" }));

  it.each([["text/plain"], ["application/x-ndjson"], [undefined]])("refuses %s with 415 and starts nothing", async (type) => {
    const res = await post("/v1/imports", body, type);
    expect(res.statusCode).toBe(415);
    expect(res.json()).toMatchObject({ reason: "UNSUPPORTED_MEDIA_TYPE", error: expect.stringContaining("application/json") });
    expect(importsStarted).toEqual([]);
    // An import request names a file; it is not a record, so nothing goes to the dead-letter sink.
    expect(published.rejected).toEqual([]);
  });

  it("reads application/json; charset=utf-8", async () => {
    const res = await post("/v1/imports", body, "application/json; charset=utf-8");
    expect(res.statusCode).toBe(202);
    expect(importsStarted).toEqual(["imports/force-a/file.jsonl"]);
  });
});

describe("order of checks: authentication before the Content-Type", () => {
  const other = generateSigningKeyPair();
  const stranger = { ...signer, privateKey: privateKeyFromPem(other.privateKeyPem) };

  it.each([["text/plain"], ["application/xml"], [undefined], ["application/json"]])(
    "a request with a bad signature and Content-Type %s is 401, with nothing dead-lettered",
    async (type) => {
      const res = await post("/v1/submissions", jsonBody(), type, stranger);
      expect(res.statusCode).toBe(401);
      expect(res.json()).toMatchObject({ reason: "UNAUTHENTICATED" });
      expect(published.rejected).toEqual([]);
    },
  );

  it("an unsigned text/plain request is 401 on both routes", async () => {
    for (const url of ["/v1/submissions", "/v1/imports"]) {
      const res = await app.inject({ method: "POST", url, headers: { "content-type": "text/plain" }, payload: "hello" });
      expect(res.statusCode).toBe(401);
      expect(res.json()).toMatchObject({ reason: "UNAUTHENTICATED" });
    }
    expect(published.rejected).toEqual([]);
  });
});

describe("GET /openapi.json", () => {
  it("lists exactly the media types each route reads and documents 415", async () => {
    const doc = (await app.inject({ method: "GET", url: "/openapi.json" })).json<{
      paths: Record<string, { post?: { requestBody: { content: Record<string, unknown> }; responses: Record<string, unknown> } }>;
    }>();
    const submissions = doc.paths["/v1/submissions"]?.post;
    const importsPost = doc.paths["/v1/imports"]?.post;
    expect(Object.keys(submissions?.requestBody.content ?? {})).toEqual([...ACCEPTED_MEDIA_TYPES["/v1/submissions"]]);
    expect(Object.keys(importsPost?.requestBody.content ?? {})).toEqual([...ACCEPTED_MEDIA_TYPES["/v1/imports"]]);
    expect(submissions?.responses).toHaveProperty("415");
    expect(importsPost?.responses).toHaveProperty("415");
  });
});

describe("replayed requests", () => {
  // Claims remembered by the ledger's look-up (submissions) and by the guard (every other route).
  const ledgerClaims = new Set<string>();
  const guardClaims = new Set<string>();
  const remember = (claims: Set<string>, digest: Buffer) => {
    const first = !claims.has(digest.toString("hex"));
    claims.add(digest.toString("hex"));
    return first;
  };
  const claimingLedger: SubmissionLedger = {
    lookup: async (_ids, claim) => ({ seen: new Map(), firstUse: claim ? remember(ledgerClaims, claim.signatureDigest) : true }),
    record: async () => {},
  };
  const guarded: FastifyInstance = buildIngestApi({
    intake: { codec, keys, ledger: claimingLedger, sink },
    keys,
    replay: { firstUse: async (digest) => remember(guardClaims, digest) },
    imports,
    metrics: createIngestMetrics(),
    logger: createLogger("ingest", "silent"),
    bodyLimitBytes: 1024 * 1024,
    maxItemsPerRequest: 1,
    ready: async () => {},
  });
  afterAll(() => guarded.close());

  const signedPost = (path: string, body: Buffer) => {
    const headers = { ...signRequest({ method: "POST", path, body }, signer), "content-type": "application/json" };
    return () => guarded.inject({ method: "POST", url: path, headers, payload: body });
  };

  it("refuses a submission request sent again, in the ledger's look-up, before anything is published", async () => {
    const send = signedPost("/v1/submissions", jsonBody());
    expect((await send()).statusCode).toBe(202);
    expect(published.accepted).toHaveLength(1);
    const again = await send();
    expect(again.statusCode).toBe(401);
    expect(again.json()).toMatchObject({ reason: "REQUEST_REPLAYED" });
    expect(published.accepted).toHaveLength(1);
    expect(published.rejected).toHaveLength(0);
    // One claim, made by the ledger: the guard was not asked as well.
    expect(ledgerClaims.size).toBe(1);
    expect(guardClaims.size).toBe(0);
  });

  it("refuses a replayed submission request whose items are all refused, or that has too many, without dead-lettering it again", async () => {
    const bad = signedPost("/v1/submissions", Buffer.from("[{}]"));
    expect((await bad()).statusCode).toBe(422);
    expect(published.rejected).toHaveLength(1);
    expect((await bad()).json()).toMatchObject({ reason: "REQUEST_REPLAYED" });
    expect(published.rejected).toHaveLength(1);
    const tooMany = signedPost(
      "/v1/submissions",
      Buffer.from(JSON.stringify([submissionToJson(submission()), submissionToJson(submission())])),
    );
    expect((await tooMany()).statusCode).toBe(413);
    expect((await tooMany()).json()).toMatchObject({ reason: "REQUEST_REPLAYED" });
  });

  it("refuses any other route's request sent again through the guard", async () => {
    const send = signedPost("/v1/imports", Buffer.from(JSON.stringify({ key: "imports/force-a/x.jsonl" })));
    expect((await send()).statusCode).toBe(202);
    expect((await send()).json()).toMatchObject({ reason: "REQUEST_REPLAYED" });
    expect(importsStarted).toHaveLength(1);
  });
});
