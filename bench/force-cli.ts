/**
 * Benchmark: the force CLI's memory and speed on a big VICS export, as a force runs it. Synthetic
 * data only: a generated VICS 2.0 export of random digests (test/support/vics-export.ts) and a
 * throw-away Ed25519 agency key.
 *
 *   node bench/force-cli.ts [--items 200000] [--file <export.json>] [--keep]
 *   node bench/force-cli.ts --items 1140263      # the 1 GiB export (about 941 bytes per item)
 *
 * It writes the export to a temporary folder (or takes --file), then runs the real CLI as a child,
 * `bin/hashrelay-ingest upload <file> --format vics ... --no-wait`: both reading passes, signing,
 * JSON Lines encoding and the multipart upload to the local stack's S3 (S3_* from .stack/env).
 * The ingest API it talks to is a stub in this process that queues nothing, so no record goes
 * through the hub. While the child runs, VmHWM (peak resident set) is read from /proc/<pid>/status
 * every 100 ms for the child and every process under it, and the peaks are summed; so is the CPU
 * time each has used (/proc/<pid>/stat), for items per CPU-second, which other load on the machine
 * sways less than items/s. Afterwards the object's lines are counted against the items and the
 * object is deleted. Prints items/s and peak RSS beside the 200 MiB target, and writes
 * bench-results/force-cli.json. Linux only (/proc).
 */
import { spawn } from "node:child_process";
import { generateKeyPairSync, randomUUID } from "node:crypto";
import { createWriteStream, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { finished } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { DeleteObjectCommand, GetObjectCommand } from "@aws-sdk/client-s3";
import { syntheticVicsExport } from "../test/support/vics-export.ts";
import { stackEnv, stackS3Client } from "../test/support/stack.ts";

const TARGET_MIB = 200;
/** USER_HZ: /proc/<pid>/stat counts CPU time in these. */
const CLOCK_TICKS = 100;
const AGENCY = "bench-force";
const USAGE = "usage: node bench/force-cli.ts [--items 200000] [--file <export.json>] [--keep]";
const REPO = join(dirname(fileURLToPath(import.meta.url)), "..");

interface Args {
  items: number;
  file: string | null;
  keep: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { items: 200_000, file: null, keep: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === "--keep") {
      args.keep = true;
      continue;
    }
    const value = argv[++i];
    if (value === undefined) throw new Error(`${flag} needs a value; ${USAGE}`);
    if (flag === "--file") args.file = value;
    else if (flag === "--items") {
      const n = Number(value.replace(/_/g, ""));
      if (!Number.isInteger(n) || n <= 0) throw new Error(`--items: not a positive integer: ${value}`);
      args.items = n;
    } else throw new Error(`unknown argument ${flag}; ${USAGE}`);
  }
  return args;
}

const log = (s: string): void => void process.stderr.write(`${s}\n`);
const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1);

async function writeExport(path: string, items: number): Promise<void> {
  const out = createWriteStream(path);
  for (const chunk of syntheticVicsExport({ items, chunkBytes: 1 << 20 })) {
    if (!out.write(chunk)) await new Promise<void>((r) => out.once("drain", () => r()));
  }
  out.end();
  await finished(out);
}

/** An ingest API stub: accepts POST /v1/imports (queued, never run) and nothing else. */
async function stubHub(): Promise<{ url: string; imports: string[]; close: () => Promise<void> }> {
  const imports: string[] = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c.toString("utf8");
    });
    req.on("end", () => {
      if (req.method === "POST" && req.url === "/v1/imports") {
        const { key } = JSON.parse(body) as { key: string };
        imports.push(key);
        const job = { importId: randomUUID(), agencyId: AGENCY, key, status: "queued", receipt: null, receiptKey: null, error: null };
        res.writeHead(202, { "content-type": "application/json" }).end(JSON.stringify(job));
        return;
      }
      res.writeHead(404, { "content-type": "application/json" }).end('{"reason":"NOT_FOUND","error":"bench stub"}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, imports, close: () => new Promise((r) => server.close(() => r())) };
}

/** Every process under `root` (root included), from the parent pids in /proc. */
function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, "utf8");
    } catch {
      continue; // gone meanwhile
    }
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(name));
    children.set(ppid, list);
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i] as number) ?? []));
  return tree;
}

/** CPU seconds (user + system) a process has used, or null once it is gone. */
function cpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return null;
  }
}

/** VmHWM of a process in bytes, or null once it is gone. */
function peakRss(pid: number): number | null {
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

interface ChildRun {
  code: number | null;
  seconds: number;
  stdout: string;
  stderr: string;
  /** Last VmHWM seen per process of the tree. */
  peaks: Map<number, number>;
  /** Last CPU seconds seen per process (sampled, so up to 100 ms short). */
  cpu: Map<number, number>;
}

async function runCli(argv: string[]): Promise<ChildRun> {
  const t0 = process.hrtime.bigint();
  const child = spawn(join(REPO, "bin", "hashrelay-ingest"), argv, { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => {
    stdout += c.toString("utf8");
  });
  child.stderr.on("data", (c: Buffer) => {
    stderr += c.toString("utf8");
  });
  const peaks = new Map<number, number>();
  const cpu = new Map<number, number>();
  const sample = () => {
    if (child.pid === undefined) return;
    for (const pid of processTree(child.pid)) {
      const hwm = peakRss(pid);
      if (hwm !== null) peaks.set(pid, hwm);
      const seconds = cpuSeconds(pid);
      if (seconds !== null) cpu.set(pid, seconds);
    }
  };
  const timer = setInterval(sample, 100);
  sample();
  const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
  clearInterval(timer);
  return { code, seconds: Number(process.hrtime.bigint() - t0) / 1e9, stdout, stderr, peaks, cpu };
}

async function countLines(body: Readable): Promise<number> {
  let lines = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++;
  }
  return lines;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const env = stackEnv();
  const loadBefore = loadavg();
  const work = mkdtempSync(join(tmpdir(), "hashrelay-bench-force-cli-"));
  const s3 = stackS3Client(env.s3);
  const objectKey = `imports/${AGENCY}/bench-${randomUUID()}.jsonl`;
  const hub = await stubHub();
  const file = args.file ?? join(work, "export.json");
  try {
    if (!args.file) {
      const t = Date.now();
      log(`bench/force-cli: writing a synthetic VICS export of ${args.items.toLocaleString("en-GB")} items to ${file}`);
      await writeExport(file, args.items);
      log(`bench/force-cli: ${mib(statSync(file).size)} MiB in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    }
    const keyFile = join(work, "agency.pem");
    writeFileSync(keyFile, generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }));
    const argv = ["upload", file, "--format", "vics", "--agency", AGENCY, "--key-id", `${AGENCY}:bench`, "--key", keyFile];
    argv.push("--url", hub.url, "--key-name", objectKey, "--no-wait");
    log(`bench/force-cli: bin/hashrelay-ingest ${argv.join(" ")}`);
    const run = await runCli(argv);
    if (run.code !== 0) throw new Error(`the CLI exited ${run.code}:\n${run.stdout}\n${run.stderr}`);
    if (hub.imports.length !== 1 || hub.imports[0] !== objectKey) throw new Error(`the CLI started imports ${JSON.stringify(hub.imports)}`);
    const object = await s3.send(new GetObjectCommand({ Bucket: env.s3.bucket, Key: objectKey }));
    const lines = await countLines(object.Body as Readable);
    if (!args.file && lines !== args.items) throw new Error(`the uploaded object holds ${lines} lines, expected ${args.items}`);
    report(args, file, lines, run, object.ContentLength ?? 0, loadBefore);
  } finally {
    await hub.close();
    await s3.send(new DeleteObjectCommand({ Bucket: env.s3.bucket, Key: objectKey })).catch(() => {});
    rmSync(`${file}.rejected.jsonl`, { force: true });
    if (!args.keep) rmSync(work, { recursive: true, force: true });
    else log(`bench/force-cli: kept ${work}`);
  }
}

function report(args: Args, file: string, items: number, run: ChildRun, objectBytes: number, loadBefore: number[]): void {
  const fileBytes = statSync(file).size;
  const peak = [...run.peaks.values()].reduce((a, b) => a + b, 0);
  const perSecond = items / run.seconds;
  const cpu = [...run.cpu.values()].reduce((a, b) => a + b, 0);
  const verdict = peak <= TARGET_MIB * 1024 * 1024 ? "within" : "OVER";
  process.stdout.write(
    [
      "",
      `force CLI upload (read twice, sign, encode, S3 multipart), ${items.toLocaleString("en-GB")} items, ${mib(fileBytes)} MiB of VICS`,
      `  time:       ${run.seconds.toFixed(1)} s, ${perSecond.toFixed(0)} items/s, ${(fileBytes / 1024 / 1024 / run.seconds).toFixed(1)} MiB/s of VICS`,
      `  CPU:        ${cpu.toFixed(1)} s user+system, ${(items / cpu).toFixed(0)} items per CPU-second`,
      `  peak RSS:   ${mib(peak)} MiB (VmHWM summed over ${run.peaks.size} process${run.peaks.size === 1 ? "" : "es"}); target ${TARGET_MIB} MiB: ${verdict}`,
      `  uploaded:   ${mib(objectBytes)} MiB of JSON Lines, ${items.toLocaleString("en-GB")} lines`,
      `  load avg:   before ${loadBefore.map((l) => l.toFixed(2)).join(" ")}, after ${loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")}`,
      "",
    ].join("\n"),
  );
  const out = join(REPO, "bench-results", "force-cli.json");
  mkdirSync(dirname(out), { recursive: true });
  const result = {
    benchmark: "force-cli",
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? "unknown",
    totalMemoryBytes: totalmem(),
    loadAverageBefore: loadBefore,
    loadAverageAfter: loadavg(),
    data: "synthetic VICS 2.0 export, random digests (test/support/vics-export.ts), throw-away Ed25519 key",
    generated: args.file === null,
    items,
    fileBytes,
    objectBytes,
    seconds: run.seconds,
    itemsPerSecond: perSecond,
    cpuSeconds: cpu,
    itemsPerCpuSecond: items / cpu,
    peakRssBytes: peak,
    peakRssByProcess: Object.fromEntries(run.peaks),
    targetPeakRssBytes: TARGET_MIB * 1024 * 1024,
  };
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`wrote ${out}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/force-cli: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
