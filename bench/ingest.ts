/**
 * Benchmark: the cost of the ingest service over a bare Kafka produce, against the real local stack
 * (`make up`). Synthetic data only: random digests signed with a throw-away agency key.
 *
 *   node bench/ingest.ts [--count 20000] [--batch 500] [--concurrency 4]
 *
 * One run, three modes, each with its own fresh submission ids (nothing is a duplicate):
 *   raw    kafkajs produce of N pre-encoded signed Submissions (the exact bytes ingest would write)
 *          with createDurableProducer's settings (idempotent, maxInFlightRequests 1, acks -1), in
 *          sequential batches of --batch, to hashes.submitted.v1 of a fresh topic namespace;
 *   http   the same N through POST /v1/submissions of an in-process ingest (startIngest, port 0,
 *          fresh database and topic namespace), bodies of --batch submissions pre-serialised as
 *          JSON, --concurrency requests in flight (each request is still signed when sent);
 *   import the same N as one JSON Lines object in S3: PutObject, POST /v1/imports, poll
 *          GET /v1/imports/{id} every 50 ms until done. The rate counts all three steps; the
 *          import alone (POST to done) is reported beside it.
 * One untimed warm-up batch goes through raw and http first. The submitted topics' sizes are
 * checked against what was sent. Prints a table and writes bench-results/ingest.json. The
 * database, the topics and the S3 objects it made are removed at the end.
 */
import { randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { DeleteObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import type { S3Client } from "@aws-sdk/client-s3";
import type { Admin, Message } from "kafkajs";
import { IngestClient } from "../services/force-cli/client.ts";
import type { AgencySigner } from "../services/force-cli/client.ts";
import { submissionToJson } from "../services/shared/wire/submission-json.ts";
import type { ImportJob } from "../services/shared/wire/ingest-api.ts";
import { startIngest } from "../services/ingest/main.ts";
import type { RunningIngest } from "../services/ingest/main.ts";
import { partitionKey } from "../services/ingest/partition-key.ts";
import { AvroCodec } from "../services/shared/wire/codec.ts";
import { createDurableProducer, createKafka, kafkaConnection } from "../services/shared/kafka.ts";
import type { RecordProducer } from "../services/shared/kafka.ts";
import { ADMIN_PRINCIPAL, servicePrincipal } from "../services/shared/kafka-access.ts";
import { createLogger } from "../services/shared/logging.ts";
import type { Submission } from "../services/shared/wire/records.ts";
import { LOCAL_TOPIC_PLAN } from "../services/shared/topics.ts";
import type { TopicNames } from "../services/shared/topics.ts";
import { registerTestAgency, signedSubmission } from "../test/support/agencies.ts";
import { freshDatabase, freshTopics, principalEnv, stackEnv, uniqueName, stackS3Client } from "../test/support/stack.ts";
import type { StackEnv, TestDatabase } from "../test/support/stack.ts";

interface Args {
  count: number;
  batch: number;
  concurrency: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { count: 20_000, batch: 500, concurrency: 4 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`${flag} needs a value; usage: --count 20000 --batch 500 --concurrency 4`);
    const n = Number(value.replace(/_/g, ""));
    if (!Number.isInteger(n) || n <= 0) throw new Error(`${flag}: not a positive integer: ${value}`);
    if (flag === "--count") args.count = n;
    else if (flag === "--batch") args.batch = n;
    else if (flag === "--concurrency") args.concurrency = n;
    else throw new Error(`unknown argument ${flag}; usage: --count 20000 --batch 500 --concurrency 4`);
    i++;
  }
  return args;
}

const log = (s: string): void => void process.stderr.write(`${s}\n`);
const now = (): bigint => process.hrtime.bigint();
const secondsSince = (t0: bigint): number => Number(now() - t0) / 1e9;

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

async function topicSize(admin: Admin, topic: string): Promise<number> {
  const offsets = await admin.fetchTopicOffsets(topic);
  return offsets.reduce((n, p) => n + Number(p.high) - Number(p.low), 0);
}

interface ModeResult {
  mode: "raw" | "http" | "import";
  what: string;
  submissions: number;
  seconds: number;
  perSecond: number;
}

function table(rows: ModeResult[], raw: ModeResult): string {
  const cells = [
    ["mode", "submissions", "seconds", "submissions/s", "vs raw", "what"],
    ...rows.map((r) => [
      r.mode,
      r.submissions.toLocaleString("en-GB"),
      r.seconds.toFixed(2),
      r.perSecond.toFixed(0),
      r === raw ? "1.00" : (r.perSecond / raw.perSecond).toFixed(2),
      r.what,
    ]),
  ];
  const widths = cells[0]!.map((_, c) => Math.max(...cells.map((row) => row[c]!.length)));
  const line = (row: string[]): string => row.map((cell, c) => (c === row.length - 1 ? cell : cell.padStart(widths[c]!))).join("  ");
  return [line(cells[0]!), widths.map((w) => "-".repeat(w)).join("  "), ...cells.slice(1).map(line)].join("\n");
}

/** The run's clients and everything it makes, removed by cleanup() at the end, on error or on Ctrl-C. */
interface Run {
  readonly args: Args;
  readonly env: StackEnv;
  readonly codec: AvroCodec;
  readonly admin: Admin;
  readonly s3: S3Client;
  readonly producer: RecordProducer;
  db: TestDatabase | undefined;
  ingest: RunningIngest | undefined;
  readonly namespaces: TopicNames[];
  readonly objectKeys: string[];
  cleanup(): Promise<void>;
}

function openRun(args: Args): Run {
  const env = stackEnv();
  // kafkajs warnings (e.g. "Limiting retries for the idempotent producer...") would clutter the table.
  // The raw produce and the inspection run as the admin principal; the ingest service as its own.
  const kafka = createKafka({
    ...kafkaConnection({ KAFKA_BROKERS: env.brokers, ...principalEnv(ADMIN_PRINCIPAL) }),
    clientId: "bench-ingest",
    logger: createLogger("bench", "error"),
  });
  const admin = kafka.admin();
  const s3 = stackS3Client(env.s3);
  const producer = createDurableProducer(kafka);
  let cleaned: Promise<void> | undefined;
  const run: Run = {
    args,
    env,
    codec: new AvroCodec(),
    admin,
    s3,
    producer,
    db: undefined,
    ingest: undefined,
    namespaces: [],
    objectKeys: [],
    cleanup: (): Promise<void> =>
      (cleaned ??= (async () => {
        await run.ingest?.stop().catch((err: unknown) => log(`cleanup: ingest stop: ${(err as Error).message}`));
        await producer.disconnect().catch(() => undefined);
        await run.db?.drop().catch((err: unknown) => log(`cleanup: drop database: ${(err as Error).message}`));
        for (const Key of run.objectKeys) await s3.send(new DeleteObjectCommand({ Bucket: env.s3.bucket, Key })).catch(() => undefined);
        const topics = run.namespaces.flatMap((t) => [t.submitted, t.rejected, t.canonical, t.audit]);
        if (topics.length)
          await admin.deleteTopics({ topics }).catch((err: unknown) => log(`cleanup: delete topics: ${(err as Error).message}`));
        await admin.disconnect().catch(() => undefined);
      })()),
  };
  // Interrupted: remove what was made (database, topics, objects) before leaving.
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      log(`bench/ingest: ${signal}; cleaning up`);
      void run.cleanup().finally(() => process.exit(130));
    });
  }
  return run;
}

/** A fresh database, two fresh topic namespaces (raw, and the ingest service's) and one synthetic agency. */
async function setUp(run: Run): Promise<{ rawTopics: TopicNames; hub: { namespace: string; names: TopicNames }; signer: AgencySigner }> {
  log("  fresh database, two topic namespaces, one synthetic agency...");
  const db = await freshDatabase("bench");
  run.db = db;
  const rawTopics = (await freshTopics([], LOCAL_TOPIC_PLAN.partitions)).names;
  run.namespaces.push(rawTopics);
  const hub = await freshTopics([], LOCAL_TOPIC_PLAN.partitions);
  run.namespaces.push(hub.names);
  const signer: AgencySigner = await registerTestAgency(db.pool, "bench-force");
  return { rawTopics, hub, signer };
}

interface Workloads {
  warmRaw: Submission[];
  warmHttp: Submission[];
  forRaw: Submission[];
  forHttp: Submission[];
  forImport: Submission[];
}

/** Every submission of the run, signed up front with fresh ids, so no mode pays for signing and none is a duplicate. */
function signWorkloads(args: Args, signer: AgencySigner): Workloads {
  log(`  signing ${3 * args.count + 2 * args.batch} synthetic submissions (random digests)...`);
  const tSign = now();
  const sign = (n: number): Submission[] => Array.from({ length: n }, () => signedSubmission(signer, { submissionId: randomUUID() }));
  const warmRaw = sign(args.batch);
  const warmHttp = sign(args.batch);
  const forRaw = sign(args.count);
  const forHttp = sign(args.count);
  const forImport = sign(args.count);
  log(`  signed in ${secondsSince(tSign).toFixed(1)} s`);
  return { warmRaw, warmHttp, forRaw, forHttp, forImport };
}

/** raw: the bytes ingest would publish, straight into Kafka. Returns the seconds the timed produce took. */
async function rawMode(run: Run, rawTopics: TopicNames, w: Workloads): Promise<number> {
  const { args, codec, producer, admin } = run;
  const encode = (subs: Submission[]): Message[] =>
    subs.map((s) => ({ key: partitionKey(s.hashes), value: codec.encode("Submission", s) }));
  const rawBatches = chunks(encode(w.forRaw), args.batch);
  await producer.connect();
  await producer.send({ topic: rawTopics.submitted, acks: -1, messages: encode(w.warmRaw) });
  log("  raw produce...");
  const t0 = now();
  for (const messages of rawBatches) await producer.send({ topic: rawTopics.submitted, acks: -1, messages });
  const rawSeconds = secondsSince(t0);
  const rawInTopic = await topicSize(admin, rawTopics.submitted);
  if (rawInTopic !== args.count + args.batch)
    throw new Error(`raw: ${rawInTopic} records in ${rawTopics.submitted}, expected ${args.count + args.batch}`);
  return rawSeconds;
}

/** http: the ingest API in this process. Returns the seconds the timed requests took, and the client for the import. */
async function httpMode(
  run: Run,
  hub: { namespace: string; names: TopicNames },
  signer: AgencySigner,
  w: Workloads,
): Promise<{ httpSeconds: number; client: IngestClient }> {
  const { args, env, admin } = run;
  const db = run.db as TestDatabase;
  const ingest = await startIngest({
    KAFKA_BROKERS: env.brokers,
    ...principalEnv(servicePrincipal("ingest")),
    DATABASE_URL: db.url,
    TOPIC_NAMESPACE: hub.namespace,
    CONSUMER_MAX_BATCH_BYTES: 1_048_576,
    CONSUMER_SESSION_TIMEOUT_MS: 10_000,
    LOG_LEVEL: "error",
    S3_ENDPOINT: env.s3.endpoint,
    S3_REGION: env.s3.region,
    S3_ACCESS_KEY_ID: env.s3.accessKeyId,
    S3_SECRET_ACCESS_KEY: env.s3.secretAccessKey,
    S3_BUCKET: env.s3.bucket,
    INGEST_HOST: "127.0.0.1",
    INGEST_PORT: 0,
    INGEST_BODY_LIMIT_BYTES: 8 * 1024 * 1024,
    INGEST_MAX_ITEMS_PER_REQUEST: 5000,
  });
  run.ingest = ingest;
  const client = new IngestClient(ingest.url, signer);
  const body = (subs: Submission[]): Buffer => Buffer.from(JSON.stringify(subs.map(submissionToJson)));
  const expectAccepted = async (b: Buffer, n: number): Promise<void> => {
    const res = await client.submitRaw(b);
    if (res.status !== 202 || res.receipt.accepted !== n) {
      throw new Error(`http: status ${res.status}, receipt ${JSON.stringify(res.receipt)} (expected ${n} accepted)`);
    }
  };
  await expectAccepted(body(w.warmHttp), w.warmHttp.length);
  const bodies = chunks(w.forHttp, args.batch).map((subs) => ({ bytes: body(subs), n: subs.length }));
  log(`  http: ${bodies.length} requests of ~${((bodies[0]?.bytes.length ?? 0) / 1024).toFixed(0)} KiB...`);
  let next = 0;
  const t0 = now();
  await Promise.all(
    Array.from({ length: args.concurrency }, async () => {
      for (let i = next++; i < bodies.length; i = next++) {
        const b = bodies[i]!;
        await expectAccepted(b.bytes, b.n);
      }
    }),
  );
  const httpSeconds = secondsSince(t0);
  const httpInTopic = await topicSize(admin, hub.names.submitted);
  if (httpInTopic !== args.count + args.batch)
    throw new Error(`http: ${httpInTopic} records in ${hub.names.submitted}, expected ${args.count + args.batch}`);
  return { httpSeconds, client };
}

interface ImportTimes {
  putSeconds: number;
  /** POST /v1/imports until the job is done. */
  importOnlySeconds: number;
  /** PutObject, POST and polling to done. */
  importSeconds: number;
  objectBytes: number;
}

/** import: JSON Lines in S3, then POST /v1/imports, polled every 50 ms until done. */
async function importMode(run: Run, hubNames: TopicNames, client: IngestClient, w: Workloads): Promise<ImportTimes> {
  const { args, env, s3, admin } = run;
  const jsonl = Buffer.from(`${w.forImport.map((s) => JSON.stringify(submissionToJson(s))).join("\n")}\n`);
  const key = `imports/bench-force/${uniqueName("bench")}.jsonl`;
  run.objectKeys.push(key, `${key}.receipt.json`);
  log(`  import: ${(jsonl.length / 1e6).toFixed(1)} MB of JSON Lines...`);
  const t0 = now();
  await s3.send(new PutObjectCommand({ Bucket: env.s3.bucket, Key: key, Body: jsonl, ContentType: "application/x-ndjson" }));
  const putSeconds = secondsSince(t0);
  const tImport = now();
  const started = await client.startImport(key);
  let job: ImportJob = started;
  while (job.status !== "done" && job.status !== "failed") {
    await new Promise((r) => setTimeout(r, 50));
    job = await client.getImport(started.importId);
  }
  const importOnlySeconds = secondsSince(tImport);
  const importSeconds = secondsSince(t0);
  if (job.status !== "done" || job.receipt.accepted !== args.count) {
    throw new Error(`import: ${job.status} ${job.error ?? ""} receipt ${JSON.stringify(job.receipt)} (expected ${args.count} accepted)`);
  }
  const importInTopic = await topicSize(admin, hubNames.submitted);
  if (importInTopic !== 2 * args.count + args.batch) {
    throw new Error(`import: ${importInTopic} records in ${hubNames.submitted}, expected ${2 * args.count + args.batch}`);
  }
  return { putSeconds, importOnlySeconds, importSeconds, objectBytes: jsonl.length };
}

/** Prints the table and the ratios, and writes bench-results/ingest.json. */
function report(args: Args, loadBefore: number[], rawSeconds: number, httpSeconds: number, imported: ImportTimes): void {
  const { putSeconds, importOnlySeconds, importSeconds } = imported;
  const n = args.count;
  const raw: ModeResult = {
    mode: "raw",
    what: `kafkajs send, batches of ${args.batch}, one at a time, idempotent, acks -1`,
    submissions: n,
    seconds: rawSeconds,
    perSecond: n / rawSeconds,
  };
  const http: ModeResult = {
    mode: "http",
    what: `POST /v1/submissions, ${args.batch} per request, ${args.concurrency} in flight`,
    submissions: n,
    seconds: httpSeconds,
    perSecond: n / httpSeconds,
  };
  const imp: ModeResult = {
    mode: "import",
    what:
      `PutObject (${putSeconds.toFixed(2)} s) + POST /v1/imports + poll to done ` +
      `(${importOnlySeconds.toFixed(2)} s: ${(n / importOnlySeconds).toFixed(0)}/s)`,
    submissions: n,
    seconds: importSeconds,
    perSecond: n / importSeconds,
  };
  const rows = [raw, http, imp];
  process.stdout.write(`\ningest throughput, ${n.toLocaleString("en-GB")} signed synthetic submissions per mode\n${table(rows, raw)}\n`);
  process.stdout.write(
    `ratios: http/raw ${(http.perSecond / raw.perSecond).toFixed(3)}, import/raw ${(imp.perSecond / raw.perSecond).toFixed(3)}` +
      ` (load average before ${loadBefore.map((l) => l.toFixed(2)).join(" ")}, after ${loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")})\n`,
  );
  const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
  const file = join(repo, "bench-results", "ingest.json");
  mkdirSync(dirname(file), { recursive: true });
  const result = {
    benchmark: "ingest",
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? "unknown",
    totalMemoryBytes: totalmem(),
    loadAverageBefore: loadBefore,
    loadAverageAfter: loadavg(),
    data: "random digests (md5, sha1, pdq) signed with a throw-away Ed25519 agency key (synthetic; no real hashes)",
    count: n,
    batch: args.batch,
    httpConcurrency: args.concurrency,
    partitions: LOCAL_TOPIC_PLAN.partitions,
    warmupSubmissions: args.batch,
    results: rows,
    importBreakdown: {
      putObjectSeconds: putSeconds,
      importSeconds: importOnlySeconds,
      importPerSecond: n / importOnlySeconds,
      objectBytes: imported.objectBytes,
    },
    ratios: { httpToRaw: http.perSecond / raw.perSecond, importToRaw: imp.perSecond / raw.perSecond },
  };
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`wrote ${file}\n`);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const run = openRun(args);
  const loadBefore = loadavg();
  try {
    await run.admin.connect();
    log(`bench/ingest: N=${args.count}, batches of ${args.batch}, ${args.concurrency} concurrent HTTP requests`);
    const { rawTopics, hub, signer } = await setUp(run);
    const workloads = signWorkloads(args, signer);
    const rawSeconds = await rawMode(run, rawTopics, workloads);
    const { httpSeconds, client } = await httpMode(run, hub, signer, workloads);
    const imported = await importMode(run, hub.names, client, workloads);
    report(args, loadBefore, rawSeconds, httpSeconds, imported);
  } finally {
    await run.cleanup();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/ingest: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
