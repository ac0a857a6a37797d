/**
 * OpenAPI 3.1 description of the ingest API, served at GET /openapi.json, with the JSON Schema of
 * the submission body (SUBMISSION_JSON_SCHEMA, also printed in docs/forces.md). The schema is
 * built from the constants the parser and the validator use, so the two cannot disagree on enums
 * or limits; test/vectors.test.ts checks that its fields are exactly the ones the parser accepts.
 * Each route's request media types are those of ACCEPTED_MEDIA_TYPES, the table the handlers
 * check; services/ingest/http.test.ts holds the two together.
 */
import { ACCEPTED_MEDIA_TYPES } from "./media-type.ts";
import {
  ContentTypeValues,
  GradingStatusValues,
  HashAlgValues,
  IcsCategoryValues,
  SubmissionOpValues,
  UkCategoryValues,
} from "../shared/wire/records.ts";
import { EXACT_ALGORITHMS, HASH_ALGORITHMS, NEAR_ALGORITHMS, QUALITY_ALGORITHMS } from "../shared/wire/hash-algorithms.ts";
import type { HashAlgorithm } from "../shared/wire/hash-algorithms.ts";
import {
  ED25519_SIGNATURE_BYTES,
  MAX_HASHES_PER_SUBMISSION,
  MAX_TEXT_LENGTH,
  MIN_SUBMITTED_AT,
  SUBMISSION_ID_PATTERN,
} from "../shared/wire/submission-validation.ts";

const nullableText = {
  type: ["string", "null"],
  maxLength: MAX_TEXT_LENGTH,
  description: "Absent or null: unknown. No U+0000 and no unpaired surrogate.",
};
const nullableFlag = { type: ["boolean", "null"], description: "Absent or null: unknown." };

/** "a, b and c" */
function listed(names: readonly string[]): string {
  return names.length < 2 ? names.join("") : `${names.slice(0, -1).join(", ")} and ${names.at(-1)}`;
}

/**
 * What one algorithm's hash must look like, from the hash-algorithm table: the canonical value (what
 * a signed submission must carry; nothing is rewritten after signing) and the quality score's range,
 * or no quality at all.
 */
function hashRule(a: HashAlgorithm) {
  const value = { pattern: a.pattern.source };
  return {
    if: { properties: { alg: { const: a.name } } },
    // biome-ignore lint/suspicious/noThenProperty: JSON Schema's if/then keyword, not a thenable
    then: a.quality
      ? { properties: { value, quality: { minimum: a.quality.min, maximum: a.quality.max } } }
      : { properties: { value, quality: { type: "null" } } },
  } as const;
}

const qualityDescription = [
  `Quality score; only on ${listed(QUALITY_ALGORITHMS)} hashes.`,
  ...HASH_ALGORITHMS.flatMap((a) =>
    a.quality
      ? [`${a.name}: ${a.quality.min} to ${a.quality.max}; below ${a.quality.minForMatching} it is kept out of near matching.`]
      : [],
  ),
].join(" ");

/**
 * JSON Schema (2020-12) of one submission in its JSON wire form (services/shared/wire/submission-json.ts).
 * Rules a schema cannot say are in the descriptions: one value per exact algorithm, no repeated
 * hash, submittedAt at most 10 minutes ahead of the hub clock, agencyId equal to the
 * authenticated agency, and the signature over the Avro encoding (docs/forces.md).
 */
export const SUBMISSION_JSON_SCHEMA = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  title: "Submission (JSON wire form)",
  type: "object",
  additionalProperties: false,
  required: ["submissionId", "agencyId", "keyId", "op", "contentType", "hashes", "grade", "gradingStatus", "submittedAt", "signature"],
  properties: {
    submissionId: {
      type: "string",
      pattern: SUBMISSION_ID_PATTERN.source,
      description: "Idempotency key: the same id with the same content is a duplicate, with other content DUPLICATE_SUBMISSION.",
    },
    agencyId: {
      type: "string",
      minLength: 1,
      maxLength: MAX_TEXT_LENGTH,
      description: "Must equal the authenticated agency (else AGENCY_MISMATCH).",
    },
    keyId: {
      type: "string",
      minLength: 1,
      maxLength: MAX_TEXT_LENGTH,
      description: "A registered, usable key of that agency: <agency>:<16 hex>.",
    },
    op: { enum: [...SubmissionOpValues] },
    contentType: { enum: [...ContentTypeValues] },
    hashes: {
      type: "array",
      minItems: 1,
      maxItems: MAX_HASHES_PER_SUBMISSION,
      description: `At most one value each of ${listed(EXACT_ALGORITHMS)}; no (alg, value) twice; ${listed(NEAR_ALGORITHMS)} may repeat (video frames).`,
      items: {
        type: "object",
        additionalProperties: false,
        required: ["alg", "value"],
        properties: {
          alg: { enum: [...HashAlgValues] },
          value: {
            type: "string",
            description: `Canonical form. ${HASH_ALGORITHMS.map((a) => `${a.name}: ${a.description}`).join("; ")}.`,
          },
          quality: { type: ["integer", "null"], description: qualityDescription },
        },
        allOf: HASH_ALGORITHMS.map(hashRule),
      },
    },
    grade: {
      type: "object",
      additionalProperties: false,
      required: ["uk"],
      properties: {
        uk: { enum: [...UkCategoryValues] },
        ics: { enum: [...IcsCategoryValues, null], description: "Absent means null." },
        vics: {
          description: "Absent means null.",
          oneOf: [
            { type: "null" },
            {
              type: "object",
              additionalProperties: false,
              required: ["profile", "code"],
              properties: {
                profile: { type: "string", minLength: 1, maxLength: 64 },
                code: { type: "integer", minimum: 0, maximum: 0x7fffffff },
              },
            },
          ],
        },
      },
    },
    gradingStatus: { enum: [...GradingStatusValues], description: "As the submitter sees it." },
    lawEnforcement: {
      description: "Law-enforcement-only metadata; absent or null means every field null.",
      oneOf: [
        { type: "null" },
        {
          type: "object",
          additionalProperties: false,
          properties: {
            caseRef: nullableText,
            series: nullableText,
            victimIdentified: nullableFlag,
            offenderIdentified: nullableFlag,
            isDistributed: nullableFlag,
            graderRef: nullableText,
          },
        },
      ],
    },
    submittedAt: {
      type: "integer",
      minimum: MIN_SUBMITTED_AT,
      description:
        "Epoch milliseconds; at most 10 minutes ahead of the hub clock; older than INGEST_MAX_SUBMISSION_AGE_DAYS is STALE_SUBMISSION.",
    },
    signature: {
      type: "string",
      pattern: `^[A-Za-z0-9+/_-]{${Math.ceil((ED25519_SIGNATURE_BYTES * 4) / 3)}}={0,2}$`,
      description: "Base64 (standard; URL-safe or unpadded accepted) of the 64-byte Ed25519 signature over the Avro encoding.",
    },
  },
} as const;

const reasonItem = {
  type: "object",
  required: ["index", "status"],
  properties: {
    index: { type: "integer" },
    submissionId: { type: ["string", "null"] },
    status: { enum: ["accepted", "duplicate", "rejected"] },
    reason: { type: "string", description: "Reason code when rejected" },
    detail: { type: "string" },
  },
};

/** GET /v1/imports/{id} and the 202 of POST /v1/imports: services/shared/wire/ingest-api.ts ImportJob. */
const importJob = {
  type: "object",
  required: ["importId", "agencyId", "bucket", "key", "status", "receipt", "receiptKey", "error"],
  properties: {
    importId: { type: "string" },
    agencyId: { type: "string" },
    bucket: { type: "string" },
    key: { type: "string" },
    status: { enum: ["queued", "running", "done", "failed"] },
    receipt: {
      type: "object",
      description: "Counts so far while running (updated after each chunk of 500 lines), final once done",
      properties: {
        accepted: { type: "integer" },
        duplicates: { type: "integer" },
        rejected: { type: "integer" },
        byReason: { type: "object", additionalProperties: { type: "integer" } },
      },
    },
    receiptKey: { type: ["string", "null"], description: "S3 key of the receipt once done" },
    error: { type: ["string", "null"], description: "Reason code and message when failed" },
    linesRead: { type: "integer", description: "Lines of the object read so far by this run, blank ones included" },
    bytesRead: { type: "integer", description: "Bytes of the object read so far by this run; equals totalBytes once done" },
    totalBytes: { type: ["integer", "null"], description: "Size of the object; null until the run has opened it" },
    startedAt: { type: ["string", "null"], format: "date-time", description: "When this run started (hub clock); null while queued" },
    updatedAt: { type: "string", format: "date-time", description: "When the job last changed (hub clock)" },
  },
};

const error = {
  type: "object",
  required: ["error", "reason"],
  properties: { error: { type: "string" }, reason: { type: "string" } },
};

/** The 415 answer of a body-taking route, naming what it reads. */
function unsupportedMediaType(route: keyof typeof ACCEPTED_MEDIA_TYPES) {
  return {
    description:
      `Content-Type missing or not one of ${ACCEPTED_MEDIA_TYPES[route].join(", ")}, or a charset other than utf-8 ` +
      "(UNSUPPORTED_MEDIA_TYPE); checked after authentication",
    content: { "application/json": { schema: error } },
  };
}

const authHeaders = ["x-hashrelay-agency", "x-hashrelay-key-id", "x-hashrelay-timestamp", "x-hashrelay-signature"].map((name) => ({
  name,
  in: "header",
  required: true,
  schema: { type: "string" },
}));

export const OPENAPI_DOCUMENT = {
  openapi: "3.1.0",
  info: {
    title: "hashrelay ingest API",
    version: "1.0.0",
    description:
      "How forces and the NCA submit signed hash records. Every /v1 request is signed with one of the agency's " +
      "registered Ed25519 keys: the signature covers `hashrelay-request-v1\\n<METHOD>\\n<path>\\n<timestamp ms>\\n<sha256 hex of body>`. " +
      "Each submission in the body is itself signed (see docs/forces.md).",
  },
  paths: {
    "/v1/submissions": {
      post: {
        summary: "Submit one signed submission, a JSON array of them, or JSON Lines",
        parameters: authHeaders,
        requestBody: {
          required: true,
          description:
            "One submission object, a JSON array of them, or JSON Lines (one object a line), in UTF-8. The form is recognised from the " +
            "bytes under any of the media types listed (415 UNSUPPORTED_MEDIA_TYPE otherwise, the body kept on the dead-letter topic); " +
            "at most INGEST_MAX_ITEMS_PER_REQUEST items (5000) and INGEST_BODY_LIMIT_BYTES (8 MiB).",
          content: {
            "application/json": {
              schema: {
                oneOf: [{ $ref: "#/components/schemas/Submission" }, { type: "array", items: { $ref: "#/components/schemas/Submission" } }],
              },
            },
            "application/x-ndjson": { schema: { $ref: "#/components/schemas/Submission" }, description: "One Submission object a line." },
            "application/jsonl": { schema: { $ref: "#/components/schemas/Submission" }, description: "One Submission object a line." },
          },
        },
        responses: {
          "202": { description: "Every item accepted (or an identical retry): durably in Kafka", content: { "application/json": {} } },
          "207": { description: "Some items accepted, some rejected (see items[].reason)" },
          "401": { description: "Request authentication failed", content: { "application/json": { schema: error } } },
          "413": { description: "Body larger than the limit (BODY_TOO_LARGE)", content: { "application/json": { schema: error } } },
          "415": unsupportedMediaType("/v1/submissions"),
          "422": {
            description: "Every item rejected",
            content: { "application/json": { schema: { type: "object", properties: { items: { type: "array", items: reasonItem } } } } },
          },
          "503": { description: "Kafka unavailable: nothing was accepted, retry", content: { "application/json": { schema: error } } },
        },
      },
    },
    "/v1/imports": {
      post: {
        summary: "Import a JSON Lines file of signed submissions from S3",
        parameters: authHeaders,
        requestBody: {
          required: true,
          content: {
            "application/json": {
              schema: { type: "object", required: ["key"], properties: { bucket: { type: "string" }, key: { type: "string" } } },
            },
          },
        },
        responses: {
          "202": { description: "Import queued; poll GET /v1/imports/{id}", content: { "application/json": { schema: importJob } } },
          "415": unsupportedMediaType("/v1/imports"),
        },
      },
    },
    "/v1/imports/{id}": {
      get: {
        summary: "Status and counts of an import (own agency only)",
        parameters: [...authHeaders, { name: "id", in: "path", required: true, schema: { type: "string" } }],
        responses: {
          "200": {
            description: "Import status, counts and progress; a re-queued import starts its counts and progress again",
            content: { "application/json": { schema: importJob } },
          },
          "404": { description: "No such import for this agency" },
        },
      },
    },
    "/healthz": { get: { summary: "Liveness", responses: { "200": { description: "Process is up" } } } },
    "/readyz": {
      get: {
        summary: "Readiness: Kafka and PostgreSQL reachable",
        responses: { "200": { description: "Ready" }, "503": { description: "Not ready" } },
      },
    },
    "/metrics": { get: { summary: "Prometheus metrics", responses: { "200": { description: "text/plain exposition" } } } },
  },
  components: { schemas: { Submission: SUBMISSION_JSON_SCHEMA } },
} as const;
