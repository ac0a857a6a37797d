/**
 * The ingest client's transport against a local HTTP server standing in for the hub: requests share
 * one kept-alive connection; a reused connection the hub drops before answering is signed and sent
 * again once, and a drop on a fresh connection is not retried.
 */
import { generateKeyPairSync } from "node:crypto";
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { AUTH_HEADERS } from "../shared/wire/request-signature.ts";
import type { AgencySigner } from "./client.ts";
import { IngestClient } from "./client.ts";

const signer: AgencySigner = {
  agencyId: "force-a",
  keyId: "force-a:0123456789abcdef",
  privateKey: generateKeyPairSync("ed25519").privateKey,
};
const RECEIPT = { receipt: { accepted: 0, duplicates: 0, rejected: 0 }, items: [] };

interface Seen {
  readonly socket: Socket;
  readonly signature: string;
}

let server: Server | null = null;

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  server = null;
});

/** A hub whose `answer` decides, per request, to answer or to drop the connection unanswered. */
async function hub(answer: (n: number) => "answer" | "drop"): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    seen.push({ socket: req.socket, signature: String(req.headers[AUTH_HEADERS.signature]) });
    req.resume();
    req.on("end", () => {
      if (answer(seen.length) === "drop") req.socket.destroy();
      else res.writeHead(202, { "content-type": "application/json" }).end(JSON.stringify(RECEIPT));
    });
  });
  await new Promise<void>((r) => server?.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

describe("IngestClient transport", () => {
  it("sends one request after another on the same connection", async () => {
    const { url, seen } = await hub(() => "answer");
    const client = new IngestClient(url, signer);
    for (let i = 0; i < 3; i++) expect((await client.submit([])).status).toBe(202);
    expect(seen).toHaveLength(3);
    expect(new Set(seen.map((s) => s.socket)).size).toBe(1);
  });

  it("signs and sends again, once, when a reused connection is dropped unanswered", async () => {
    const { url, seen } = await hub((n) => (n === 2 ? "drop" : "answer"));
    const client = new IngestClient(url, signer);
    await client.submit([]);
    expect((await client.submit([])).status).toBe(202);
    expect(seen).toHaveLength(3);
    expect(seen[2]?.socket).not.toBe(seen[1]?.socket);
    expect(seen[2]?.signature).not.toBe(seen[1]?.signature);
  });

  it("does not retry a drop on a fresh connection", async () => {
    const { url, seen } = await hub(() => "drop");
    const client = new IngestClient(url, signer);
    await expect(client.submit([])).rejects.toThrow(/socket hang up|ECONNRESET/);
    expect(seen).toHaveLength(1);
  });
});
