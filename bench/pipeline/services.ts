/**
 * The pipeline under test: ingest, dedup, distribution and two partner sinks, each a separate
 * process with its own Kafka principal and its production defaults (except a 6 s session timeout
 * and no S3 exports or bootstrap), logging to bench-results/pipeline-logs/. And the probes that
 * tell when the pipeline has settled: outboxes empty and every stored consumer offset at its
 * topic's high watermark.
 */
import { createWriteStream, mkdirSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { Pool } from "../../services/shared/postgres.ts";
import { startServiceProcess } from "../../test/support/processes.ts";
import { PARTNERS } from "./context.ts";
import type { Bench } from "./context.ts";
import type { Setup } from "./setup.ts";
import { freePort, log } from "./util.ts";

export interface Services {
  readonly ingestUrl: string;
  /** Process name -> its log file. */
  readonly logFiles: Record<string, string>;
  /** Process name -> the service it runs. */
  readonly serviceOf: Record<string, string>;
}

export async function startServices(b: Bench, s: Setup): Promise<Services> {
  const { env, namespace, res } = b;
  const { hubDb, hubKey, partnerDbs } = s;
  log("  starting ingest, dedup, distribution and two partner sinks as processes...");
  const ingestPort = await freePort();
  const common: Record<string, string> = {
    KAFKA_BROKERS: env.brokers.join(","),
    DATABASE_URL: hubDb.url,
    TOPIC_NAMESPACE: namespace,
    LOG_LEVEL: "info",
    CONSUMER_SESSION_TIMEOUT_MS: "6000",
    S3_ENDPOINT: env.s3.endpoint,
    S3_REGION: env.s3.region,
    S3_ACCESS_KEY_ID: env.s3.accessKeyId,
    S3_SECRET_ACCESS_KEY: env.s3.secretAccessKey,
    S3_BUCKET: env.s3.bucket,
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
    KAFKAJS_NO_PARTITIONER_WARNING: "1",
  };
  const hubPublicKeys = `${hubKey.keyId}=${hubKey.publicKey.toString("base64")}`;
  const procSpecs: { name: string; service: string; env: Record<string, string> }[] = [
    { name: "ingest", service: "ingest", env: { ...common, INGEST_HOST: "127.0.0.1", INGEST_PORT: String(ingestPort) } },
    // No KAFKA_SASL_* here: each service process picks its own principal's local credentials,
    // and its consumer group defaults to consumerGroups(namespace), as groupOf names them.
    { name: "dedup", service: "dedup", env: { ...common } },
    {
      name: "distribution",
      service: "distribution",
      env: {
        ...common,
        HUB_KEY_ID: hubKey.keyId,
        HUB_SIGNING_KEY_FILE: hubKey.file,
        DISTRIBUTION_PSEUDONYM_SECRET: `bench-${b.run}-pseudonym-secret`,
        DISTRIBUTION_EXPORT_INTERVAL_MS: "0",
      },
    },
    ...(["hotline", "industry"] as const).map((k) => ({
      name: `sink-${k}`,
      service: "partner-sink",
      env: {
        ...common,
        PARTNER_ID: PARTNERS[k],
        PARTNER_DATABASE_URL: partnerDbs[k].url,
        HUB_PUBLIC_KEYS: hubPublicKeys,
        PARTNER_BOOTSTRAP: "none",
        PARTNER_HTTP_PORT: "0",
      },
    })),
  ];
  const logFiles: Record<string, string> = {};
  const profileDir = join(b.resultsDir, "profiles");
  if (b.args.profile) mkdirSync(profileDir, { recursive: true });
  for (const spec of procSpecs) {
    // --profile: the V8 CPU profile and the SQL statement count, written when the service exits (cleanup stops it with SIGTERM).
    const profiled: Record<string, string> = b.args.profile
      ? {
          NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profileDir} --cpu-prof-name=${spec.name}.cpuprofile --import=${pathToFileURL(join(import.meta.dirname, "query-count.ts")).href}`,
          BENCH_QUERY_COUNT_FILE: join(profileDir, `${spec.name}.queries.json`),
        }
      : {};
    const p = startServiceProcess(spec.service, { ...spec.env, ...profiled });
    res.procs[spec.name] = p;
    res.saveState();
    const file = join(b.logDir, `${spec.name}.log`);
    logFiles[spec.name] = file;
    const stream = createWriteStream(file);
    res.logStreams.push(stream);
    p.child.stdout?.on("data", (c: Buffer) => stream.write(c));
    p.child.stderr?.on("data", (c: Buffer) => stream.write(c));
  }
  const serviceOf: Record<string, string> = Object.fromEntries(procSpecs.map((spec) => [spec.name, spec.service]));
  return { ingestUrl: `http://127.0.0.1:${ingestPort}`, logFiles, serviceOf };
}

export interface Probes {
  count(pool: Pool, sql: string, params?: unknown[]): Promise<number>;
  /** Live rows in each partner's database. */
  partnerRows(): Promise<{ hotline: number; industry: number }>;
  /** Sum of a topic's high watermarks. */
  highSum(topic: string): Promise<number>;
  /** Submissions dedup applied and canonical records distribution handled, in the hub database. */
  hubCounts(): Promise<{ applied: number; distributed: number }>;
  /** Outboxes empty and every stage's stored offsets at its topic's high watermarks. */
  settled(): Promise<boolean>;
  /** Where each stage stands, and each process's last output: printed when a wait times out. */
  diagnose(): Promise<string>;
}

export function pipelineProbes(b: Bench, s: Setup): Probes {
  const { admin, res } = b;
  const { hubDb, partnerDbs, names, feedTopics, groupOf } = s;
  const count = async (pool: Pool, sql: string, params: unknown[] = []): Promise<number> =>
    Number((await pool.query<{ n: number }>(sql, params)).rows[0]?.n ?? 0);
  const partnerRows = async () => ({
    hotline: await count(partnerDbs.hotline.pool, "SELECT count(*)::int AS n FROM partner_hashes WHERE NOT removed"),
    industry: await count(partnerDbs.industry.pool, "SELECT count(*)::int AS n FROM partner_hashes WHERE NOT removed"),
  });
  const highSum = async (topic: string): Promise<number> => (await admin.fetchTopicOffsets(topic)).reduce((n, p) => n + Number(p.high), 0);
  const caughtUp = async (pool: Pool, group: string, topic: string): Promise<boolean> => {
    const ends = await admin.fetchTopicOffsets(topic);
    const { rows } = await pool.query<{ partition: number; next_offset: number }>(
      "SELECT partition, next_offset FROM consumer_offsets WHERE consumer_group = $1 AND topic = $2",
      [group, topic],
    );
    const stored = new Map(rows.map((r) => [r.partition, Number(r.next_offset)]));
    return ends.every((e) => Number(e.high) === 0 || (stored.get(e.partition) ?? 0) >= Number(e.high));
  };
  const outboxes = async () => count(hubDb.pool, "SELECT ((SELECT count(*) FROM outbox) + (SELECT count(*) FROM feed_outbox))::int AS n");
  const settled = async (): Promise<boolean> =>
    (await outboxes()) === 0 &&
    (await caughtUp(hubDb.pool, groupOf.dedup, names.submitted)) &&
    (await caughtUp(hubDb.pool, groupOf.distribution, names.canonical)) &&
    (await caughtUp(partnerDbs.hotline.pool, groupOf.hotline, feedTopics[0] as string)) &&
    (await caughtUp(partnerDbs.industry.pool, groupOf.industry, feedTopics[1] as string)) &&
    (await outboxes()) === 0;
  const diagnose = async (): Promise<string> => {
    const lines: string[] = [];
    const stage = async (label: string, pool: Pool, group: string, topic: string) => {
      const ends = await admin.fetchTopicOffsets(topic);
      const { rows } = await pool.query<{ partition: number; next_offset: string }>(
        "SELECT partition, next_offset::text FROM consumer_offsets WHERE consumer_group = $1 AND topic = $2",
        [group, topic],
      );
      lines.push(
        `${label}: high ${ends.map((e) => `${e.partition}:${e.high}`).join(" ")} | stored ${rows.map((r) => `${r.partition}:${r.next_offset}`).join(" ")}`,
      );
    };
    await stage("dedup", hubDb.pool, groupOf.dedup, names.submitted).catch(() => undefined);
    await stage("distribution", hubDb.pool, groupOf.distribution, names.canonical).catch(() => undefined);
    await stage("sink hotline", partnerDbs.hotline.pool, groupOf.hotline, feedTopics[0] as string).catch(() => undefined);
    await stage("sink industry", partnerDbs.industry.pool, groupOf.industry, feedTopics[1] as string).catch(() => undefined);
    lines.push(`outbox rows: ${await outboxes().catch(() => "?")}; partner rows: ${JSON.stringify(await partnerRows().catch(() => "?"))}`);
    for (const [name, p] of Object.entries(res.procs)) {
      lines.push(
        `--- ${name} (${p.child.exitCode ?? p.child.signalCode ?? "running"}, restarts ${p.restarts})`,
        p.output.join("").split("\n").slice(-12).join("\n"),
      );
    }
    return lines.join("\n");
  };
  const hubCounts = async () => {
    const { rows } = await hubDb.pool.query<{ applied: number; distributed: number }>(
      "SELECT (SELECT count(*) FROM applied_submissions)::int AS applied, (SELECT count(*) FROM distributed_records)::int AS distributed",
    );
    return rows[0] ?? { applied: 0, distributed: 0 };
  };
  return { count, partnerRows, highSum, hubCounts, settled, diagnose };
}
