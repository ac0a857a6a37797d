/** OpenAPI 3.1 description of the ingest API, served at GET /openapi.json. */
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

const error = {
  type: "object",
  required: ["error", "reason"],
  properties: { error: { type: "string" }, reason: { type: "string" } },
};

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
      "Each submission in the body is itself signed (see README).",
  },
  paths: {
    "/v1/submissions": {
      post: {
        summary: "Submit one signed submission, a JSON array of them, or JSON Lines",
        parameters: authHeaders,
        requestBody: {
          required: true,
          content: { "application/json": { schema: { oneOf: [{ type: "object" }, { type: "array" }] } }, "application/x-ndjson": {} },
        },
        responses: {
          "202": { description: "Every item accepted (or an identical retry): durably in Kafka", content: { "application/json": {} } },
          "207": { description: "Some items accepted, some rejected (see items[].reason)" },
          "401": { description: "Request authentication failed", content: { "application/json": { schema: error } } },
          "413": { description: "Body larger than the limit (BODY_TOO_LARGE)", content: { "application/json": { schema: error } } },
          "422": { description: "Every item rejected", content: { "application/json": { schema: { type: "object", properties: { items: { type: "array", items: reasonItem } } } } } },
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
        responses: { "202": { description: "Import queued; poll GET /v1/imports/{id}" } },
      },
    },
    "/v1/imports/{id}": {
      get: {
        summary: "Status and counts of an import (own agency only)",
        parameters: [...authHeaders, { name: "id", in: "path", required: true, schema: { type: "string" } }],
        responses: { "200": { description: "Import status" }, "404": { description: "No such import for this agency" } },
      },
    },
    "/healthz": { get: { summary: "Liveness", responses: { "200": { description: "Process is up" } } } },
    "/readyz": { get: { summary: "Readiness: Kafka and PostgreSQL reachable", responses: { "200": { description: "Ready" }, "503": { description: "Not ready" } } } },
    "/metrics": { get: { summary: "Prometheus metrics", responses: { "200": { description: "text/plain exposition" } } } },
  },
} as const;
