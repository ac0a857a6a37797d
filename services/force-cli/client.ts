/**
 * A force's client for the ingest API: signs each request with the agency key (the scheme is in
 * services/shared/wire/request-signature.ts) and speaks JSON. Used by the force CLI, the demo and the tests.
 */
import type { KeyObject } from "node:crypto";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import type { ReasonCode } from "../shared/errors.ts";
import type { Submission } from "../shared/wire/records.ts";
import { submissionToJson } from "../shared/wire/submission-json.ts";
import type { ImportJob, ItemOutcome, Receipt } from "../shared/wire/ingest-api.ts";
import { signRequest } from "../shared/wire/request-signature.ts";

export interface AgencySigner {
  readonly agencyId: string;
  readonly keyId: string;
  readonly privateKey: KeyObject;
}

export interface SubmitResponse {
  readonly status: number;
  readonly receipt: Receipt;
  readonly items: ItemOutcome[];
}

export class IngestApiError extends Error {
  readonly status: number;
  readonly reason: ReasonCode | string;

  constructor(status: number, reason: ReasonCode | string, message: string) {
    super(`${status} ${reason}: ${message}`);
    this.status = status;
    this.reason = reason;
  }
}

export class IngestClient {
  private readonly baseUrl: string;
  private readonly signer: AgencySigner;

  constructor(baseUrl: string, signer: AgencySigner) {
    this.baseUrl = baseUrl;
    this.signer = signer;
  }

  private async request(method: "GET" | "POST", path: string, body: Buffer = Buffer.alloc(0), contentType = "application/json") {
    const attempt = () => {
      // Signed afresh for every attempt: the hub refuses a request signature it has seen before.
      const headers: Record<string, string> = { ...signRequest({ method, path, body }, this.signer) };
      if (method === "POST") headers["content-type"] = contentType;
      return send(new URL(path, this.baseUrl), method, headers, method === "POST" ? body : null);
    };
    const res = await attempt().catch((err: Error & { staleConnection?: boolean }) => {
      if (err.staleConnection) return attempt();
      throw err;
    });
    const text = res.body.toString("utf8");
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    return { status: res.status, json: json as Record<string, unknown> | null, text };
  }

  /** Posts raw bytes as they are (tests use this for malformed bodies). */
  async submitRaw(body: Buffer, contentType = "application/json"): Promise<SubmitResponse> {
    const res = await this.request("POST", "/v1/submissions", body, contentType);
    if (res.json && "receipt" in res.json) {
      return { status: res.status, receipt: res.json["receipt"] as Receipt, items: res.json["items"] as ItemOutcome[] };
    }
    throw new IngestApiError(res.status, String(res.json?.["reason"] ?? "INTERNAL"), String(res.json?.["error"] ?? res.text));
  }

  async submit(submissions: readonly Submission[]): Promise<SubmitResponse> {
    return this.submitRaw(Buffer.from(JSON.stringify(submissions.map(submissionToJson))));
  }

  async startImport(key: string, bucket?: string): Promise<ImportJob> {
    const res = await this.request("POST", "/v1/imports", Buffer.from(JSON.stringify({ key, ...(bucket ? { bucket } : {}) })));
    if (res.status !== 202) throw new IngestApiError(res.status, String(res.json?.["reason"]), String(res.json?.["error"] ?? res.text));
    return res.json as unknown as ImportJob;
  }

  async getImport(importId: string): Promise<ImportJob> {
    const res = await this.request("GET", `/v1/imports/${encodeURIComponent(importId)}`);
    if (res.status !== 200) throw new IngestApiError(res.status, String(res.json?.["reason"]), String(res.json?.["error"] ?? res.text));
    return res.json as unknown as ImportJob;
  }

  /** Polls an import until it is done or failed. */
  async waitForImport(importId: string, options: { timeoutMs?: number; onProgress?: (job: ImportJob) => void } = {}): Promise<ImportJob> {
    const deadline = Date.now() + (options.timeoutMs ?? 10 * 60_000);
    for (;;) {
      const job = await this.getImport(importId);
      options.onProgress?.(job);
      if (job.status === "done" || job.status === "failed") return job;
      if (Date.now() > deadline) throw new Error(`import ${importId} still ${job.status} after the timeout`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/**
 * One HTTP exchange on Node's global agents, which keep connections alive between requests (and
 * let an idle one go without holding the process open): a force sending many requests reuses one
 * connection rather than paying a connection, or fetch's stream machinery, per request. A reused
 * connection the hub closed as idle just as the request went out fails with ECONNRESET before the
 * hub read anything: `staleConnection` says so, and the caller may sign and send it again.
 */
function send(
  url: URL,
  method: "GET" | "POST",
  headers: Record<string, string>,
  body: Buffer | null,
): Promise<{ status: number; body: Buffer }> {
  const request = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers: body ? { ...headers, "content-length": String(body.length) } : headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("error", reject);
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    });
    req.on("error", (err: NodeJS.ErrnoException) =>
      reject(Object.assign(err, { staleConnection: req.reusedSocket && err.code === "ECONNRESET" })),
    );
    req.end(body ?? undefined);
  });
}
