/**
 * What one HTTP request costs on this machine at a trickle, with nothing behind it: a fastify
 * server (its own process, the routes' body parsing as ingest's) answering a 202 at once, and a
 * client on Node's kept-alive agent (as services/force-cli/client.ts) sending one small POST every
 * --interval-ms, one at a time. It prints the CPU per request of each process, the floor under
 * ingest's and the bench client's share of the pipeline benchmark's trickle figure
 * (docs/benchmarks.md): at a trickle a process is woken for every request, and the wake-ups, not
 * the work, are most of the cost.
 *
 *   node bench/http-floor.ts [--requests 400] [--interval-ms 50]
 *
 * Writes bench-results/http-floor.json.
 */
import { fork } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import type { AddressInfo } from "node:net";
import Fastify from "fastify";
import { REPO_ROOT } from "../services/shared/config.ts";
import { cpuUsageMs } from "./pipeline/proc.ts";
import { positiveIntegerArgs } from "./pipeline/util.ts";

/** The server process: tells its parent its port, and its CPU time whenever asked. */
async function serve(): Promise<void> {
  const app = Fastify({ logger: false });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "buffer" }, (_req, body, done) => done(null, body));
  app.post("/v1/submissions", async (_req, reply) =>
    reply.code(202).send({ receipt: { accepted: 1, duplicates: 0, rejected: 0 }, items: [] }),
  );
  await app.listen({ port: 0, host: "127.0.0.1" });
  process.on("message", () => process.send?.({ cpu: process.cpuUsage() }));
  process.send?.({ port: (app.server.address() as AddressInfo).port });
}

async function main(): Promise<void> {
  const args = positiveIntegerArgs("bench/http-floor.ts", process.argv.slice(2), { requests: 400, intervalMs: 50 });
  const server = fork(import.meta.filename, ["--serve"], { stdio: "inherit" });
  const next = () => new Promise<{ port?: number; cpu?: NodeJS.CpuUsage }>((resolve) => server.once("message", resolve));
  const { port } = await next();
  const serverCpu = async () => {
    const answer = next();
    server.send("cpu");
    return (await answer).cpu as NodeJS.CpuUsage;
  };
  const body = Buffer.from(JSON.stringify([{ submissionId: "synthetic", hashes: [{ alg: "md5", value: "0".repeat(32) }] }]));
  const post = () =>
    new Promise<void>((resolve, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          port,
          path: "/v1/submissions",
          method: "POST",
          headers: { "content-type": "application/json", "content-length": body.length },
        },
        (res) => res.resume().on("end", resolve),
      );
      req.on("error", reject);
      req.end(body);
    });
  for (let i = 0; i < 100; i++) await post(); // warm both processes up
  const s0 = await serverCpu();
  const c0 = process.cpuUsage();
  for (let i = 0; i < args.requests; i++) {
    await post();
    await new Promise((r) => setTimeout(r, args.intervalMs));
  }
  const client = cpuUsageMs(process.cpuUsage(c0)) / args.requests;
  const served = (cpuUsageMs(await serverCpu()) - cpuUsageMs(s0)) / args.requests;
  server.kill();
  mkdirSync(`${REPO_ROOT}bench-results`, { recursive: true });
  writeFileSync(
    `${REPO_ROOT}bench-results/http-floor.json`,
    `${JSON.stringify({ ...args, serverMsPerRequest: served, clientMsPerRequest: client, at: new Date().toISOString() }, null, 2)}\n`,
  );
  process.stdout.write(
    `${args.requests} requests, one every ${args.intervalMs} ms: server ${served.toFixed(3)} ms CPU per request, ` +
      `client ${client.toFixed(3)} (with its timer), both ${(served + client).toFixed(3)}\n`,
  );
}

if (process.argv[2] === "--serve") await serve();
else await main();
