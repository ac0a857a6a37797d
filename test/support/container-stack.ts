/**
 * The test stack as containers (HASHRELAY_STACK=containers, `make test STACK=containers`): Kafka,
 * PostgreSQL and s3proxy from the images infra/images/build.sh makes, started through testcontainers
 * and configured as infra/stack.sh configures its local processes: TLS and SASL/SCRAM on the broker
 * with the same principals (infra/stack.sh credentials) and deny-by-default ACLs, trust on PostgreSQL,
 * the same S3 credentials and bucket. Its state (passwords, TLS material, broker logs, env file)
 * lives in <stack dir>/containers, which becomes the tests' stack dir (HASHRELAY_STACK_DIR), so
 * `infra/stack.sh principal` and localStackEnv() reach this stack and not the local one. Its host
 * ports differ from the local stack's, so both run at once. No reaper container can be pulled on
 * machines without a registry: stop() removes the containers, and a start removes the ones a crashed
 * run left behind.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import pino from "pino";
import { GenericContainer, getContainerRuntimeClient, ImageName, Wait } from "testcontainers";
import type { StartedTestContainer } from "testcontainers";
import { REPO_ROOT } from "../../services/shared/config.ts";
import { createKafka, kafkaConnection } from "../../services/shared/kafka.ts";

/** Label on every container this module (and the image smoke test) starts, with the owning process. */
export const STACK_LABEL = "org.hashrelay.test-stack";

export interface ContainerStack {
  /** The stack dir the tests use: env file, principals, TLS material, broker logs. */
  readonly dir: string;
  /** What .stack/env holds for the local stack, for this one. */
  readonly env: Record<string, string>;
  /** Variables that point infra/stack.sh, the tests and the services at this stack. */
  readonly control: Record<string, string>;
  stop(): Promise<void>;
}

const VERSION = (JSON.parse(readFileSync(`${REPO_ROOT}package.json`, "utf8")) as { version: string }).version;

type ImageKind = "hashrelay" | "hashrelay-partner-sink" | "hashrelay-kafka" | "hashrelay-postgres" | "hashrelay-s3proxy";

/** The image tag build.sh gives this checkout's images. */
export function imageName(name: ImageKind): string {
  return `localhost/${name}:${process.env["HASHRELAY_IMAGE_TAG"] ?? VERSION}`;
}

/**
 * Fails at once, naming the command that builds them, when images are missing: the engine would
 * otherwise try to pull them from a registry called "localhost" and fail with a connection error.
 */
export async function requireImages(names: readonly ImageKind[]): Promise<void> {
  const client = await getContainerRuntimeClient();
  const missing: string[] = [];
  for (const name of names) if (!(await client.image.exists(ImageName.fromString(imageName(name))))) missing.push(imageName(name));
  if (missing.length > 0) throw new Error(`missing images ${missing.join(", ")}: build them with \`make images\` (infra/images/build.sh)`);
}

function port(variable: string, fallback: number): number {
  const value = Number(process.env[variable] ?? fallback);
  if (!Number.isInteger(value) || value < 1 || value > 65535)
    throw new Error(`${variable} must be a port number, not ${process.env[variable]}`);
  return value;
}

/**
 * Points Docker-API clients at the engine: with podman, its socket service, which
 * infra/images/engine.sh configures and starts where no Docker engine answers.
 */
export function useContainerEngine(): void {
  if (process.env["DOCKER_HOST"]) return;
  const lines = execFileSync(`${REPO_ROOT}infra/images/engine.sh`, ["env"], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  for (const line of lines.split("\n")) {
    const m = /^export ([A-Z_]+)=(.*)$/.exec(line);
    if (m) process.env[m[1] as string] ??= m[2] as string;
  }
}

/** Every container of a test stack, started or not (the runtime client's own list shows only running ones). */
async function stackContainers() {
  const client = await getContainerRuntimeClient();
  return client.container.dockerode.listContainers({ all: true, filters: { label: [STACK_LABEL] } });
}

/** Removes containers an earlier run left behind (its process is gone); refuses to start beside a live one. */
async function removeLeftovers(): Promise<void> {
  const client = await getContainerRuntimeClient();
  for (const info of await stackContainers()) {
    const owner = info.Labels?.[STACK_LABEL];
    if (!owner) continue;
    const [host, pid] = owner.split(":");
    let alive = false;
    if (host === hostLabel() && Number(pid) !== process.pid) {
      try {
        process.kill(Number(pid), 0);
        alive = true;
      } catch {
        alive = false;
      }
    }
    if (alive) throw new Error(`another containers test run (pid ${pid}) holds the container stack's ports; wait for it to finish`);
    await client.container.remove(client.container.getById(info.Id), { removeVolumes: true }).catch(async () => {
      await client.container.getById(info.Id).remove({ force: true, v: true });
    });
  }
}

function hostLabel(): string {
  return readFileSync("/proc/sys/kernel/hostname", "utf8").trim();
}

/** The label value of this process: which run owns a container. */
export function ownerLabel(): Record<string, string> {
  return { [STACK_LABEL]: `${hostLabel()}:${process.pid}` };
}

/**
 * One group id on each partition of __consumer_offsets (offsets.topic.num.partitions in
 * infra/kafka/broker.properties.in). Kafka places a group by the Java hashCode of its id.
 */
function groupPerOffsetsPartition(partitions = 10): string[] {
  const byPartition = new Map<number, string>();
  for (let i = 0; byPartition.size < partitions; i++) {
    const id = `hashrelay-stack-check-${i}`;
    let hash = 0;
    for (const ch of id) hash = (Math.imul(hash, 31) + ch.charCodeAt(0)) | 0;
    const partition = (hash & 0x7fffffff) % partitions;
    if (!byPartition.has(partition)) byPartition.set(partition, id);
  }
  return [...byPartition.values()];
}

/**
 * Waits until the broker authenticates the admin and every group coordinator has loaded: a fresh
 * broker creates __consumer_offsets at the first group request and answers GROUP_LOAD_IN_PROGRESS
 * until it has, which a test's first consumer would otherwise meet (the local stack's long-lived
 * broker never shows it).
 */
async function kafkaAnswers(env: Record<string, string>, adminPassword: string, timeoutMs: number): Promise<void> {
  const kafka = createKafka({
    ...kafkaConnection({
      KAFKA_BROKERS: [env["KAFKA_BROKERS"] as string],
      KAFKA_SSL: "true",
      KAFKA_SSL_CA_FILE: env["KAFKA_SSL_CA_FILE"],
      KAFKA_SASL_MECHANISM: "scram-sha-512",
      KAFKA_SASL_USERNAME: "hashrelay-admin",
      KAFKA_SASL_PASSWORD: adminPassword,
    }),
    clientId: "container-stack-check",
    // The errors of the wait itself (coordinator still loading) are expected: not worth a log line.
    logger: pino({ level: "silent" }),
  });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const admin = kafka.admin();
    try {
      await admin.connect();
      await admin.describeCluster();
      await admin.describeGroups(groupPerOffsetsPartition());
      return;
    } catch (err) {
      if (Date.now() > deadline)
        throw new Error(`the Kafka container did not answer within ${timeoutMs / 1000} s: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 1_000));
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }
}

export async function startContainerStack(): Promise<ContainerStack> {
  const outer = process.env["HASHRELAY_STACK_DIR"] ?? `${REPO_ROOT}.stack`;
  const lib = process.env["HASHRELAY_LIB_DIR"] ?? `${outer}/lib`;
  const dir = `${outer}/containers`;
  const kafkaPort = port("HASHRELAY_CONTAINERS_KAFKA_PORT", 39092);
  const pgPort = port("HASHRELAY_CONTAINERS_PG_PORT", 35432);
  const s3Port = port("HASHRELAY_CONTAINERS_S3_PORT", 39000);
  const control = { HASHRELAY_STACK_DIR: dir, HASHRELAY_LIB_DIR: lib, HASHRELAY_KAFKA_PORT: String(kafkaPort) };

  useContainerEngine();
  await requireImages(["hashrelay-kafka", "hashrelay-postgres", "hashrelay-s3proxy"]);
  await removeLeftovers();
  // A fresh broker each run: fresh passwords, formatted in at its start (infra/kafka/compose-start.sh).
  // The TLS material is kept; the broker logs start empty.
  rmSync(`${dir}/kafka/principals`, { recursive: true, force: true });
  rmSync(`${dir}/kafka/principals.created`, { force: true });
  rmSync(`${dir}/logs`, { recursive: true, force: true });
  mkdirSync(`${dir}/logs`, { recursive: true });
  execFileSync(`${REPO_ROOT}infra/stack.sh`, ["credentials"], {
    env: { ...process.env, ...control },
    stdio: ["ignore", "ignore", "inherit"],
  });

  const principals = `${dir}/kafka/principals`;
  const tls = `${dir}/kafka/tls`;
  const s3 = { identity: "hashrelay-local", credential: "hashrelay-local-secret", bucket: "hashrelay" };
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const started: StartedTestContainer[] = [];
  const stop = async () => {
    await Promise.all(started.map((c) => c.stop({ timeout: 10_000, removeVolumes: true }).catch(() => undefined)));
  };
  try {
    const starting = [
      startOnFreePort(kafkaPort, () =>
        new GenericContainer(imageName("hashrelay-kafka"))
          .withLabels(ownerLabel())
          .withExposedPorts({ container: kafkaPort, host: kafkaPort })
          .withEnvironment({
            // A Kafka Uuid: 16 random bytes, URL-safe base64 without padding.
            CLUSTER_ID: randomBytes(16).toString("base64url").replace(/^-/, "A"),
            KAFKA_CLIENT_PORT: String(kafkaPort),
            KAFKA_HEAP_OPTS: "-Xms256m -Xmx768m",
          })
          // As the test runner's user: it reads the mode-600 password files and writes the log folder.
          .withUser(`${uid}:${gid}`)
          .withBindMounts([
            { source: principals, target: "/principals", mode: "ro" },
            { source: tls, target: "/tls", mode: "ro" },
            { source: `${dir}/logs`, target: "/var/log/kafka", mode: "rw" },
          ])
          .withWaitStrategy(Wait.forListeningPorts())
          .withStartupTimeout(120_000),
      ),
      startOnFreePort(pgPort, () =>
        new GenericContainer(imageName("hashrelay-postgres"))
          .withLabels(ownerLabel())
          .withExposedPorts({ container: 5432, host: pgPort })
          .withWaitStrategy(Wait.forLogMessage("database system is ready to accept connections"))
          .withStartupTimeout(120_000),
      ),
      startOnFreePort(s3Port, () =>
        new GenericContainer(imageName("hashrelay-s3proxy"))
          .withLabels(ownerLabel())
          .withExposedPorts({ container: 8080, host: s3Port })
          .withEnvironment({ S3PROXY_IDENTITY: s3.identity, S3PROXY_CREDENTIAL: s3.credential, S3_BUCKET: s3.bucket })
          .withWaitStrategy(Wait.forListeningPorts())
          .withStartupTimeout(120_000),
      ),
    ];
    const results = await Promise.allSettled(starting);
    for (const r of results) if (r.status === "fulfilled") started.push(r.value);
    const failed = results.find((r) => r.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;

    const env: Record<string, string> = {
      KAFKA_BROKERS: `127.0.0.1:${kafkaPort}`,
      KAFKA_SASL_MECHANISM: "scram-sha-512",
      KAFKA_SSL: "true",
      KAFKA_SSL_CA_FILE: `${tls}/ca.pem`,
      KAFKA_PRINCIPALS_DIR: principals,
      KAFKA_AUTHORIZER_LOG: `${dir}/logs/kafka-authorizer.log`,
      DATABASE_URL: `postgres://postgres@127.0.0.1:${pgPort}/hashrelay`,
      S3_ENDPOINT: `http://127.0.0.1:${s3Port}`,
      S3_REGION: "us-east-1",
      S3_ACCESS_KEY_ID: s3.identity,
      S3_SECRET_ACCESS_KEY: s3.credential,
      S3_BUCKET: s3.bucket,
      S3_FORCE_PATH_STYLE: "true",
    };
    await kafkaAnswers(env, readFileSync(`${principals}/hashrelay-admin`, "utf8").trim(), 120_000);
    // Every password file was formatted in: `infra/stack.sh principal` need not create them again.
    const formatted = readdirSync(principals).filter((name) => name !== "controller" && !name.startsWith("."));
    writeFileSync(`${dir}/kafka/principals.created`, `${formatted.join("\n")}\n`);
    writeFileSync(
      `${dir}/env`,
      `${Object.entries(env)
        .map(([k, v]) => `${k}=${v}`)
        .join("\n")}\n`,
    );
    const [kafka] = started as [StartedTestContainer];
    return { dir, env, control: { ...control, HASHRELAY_KAFKA_CONTAINER: kafka.getId() }, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

const PORT_FREE_WAIT_MS = 60_000;

/**
 * Starts a container whose host port may still be held for a while by the previous run (podman's
 * rootless port forwarder lets go of it some seconds after its container is gone): the engine then
 * refuses with "address already in use" and leaves the container created but not started. Such a
 * container is removed and the start tried again once the port can be bound, for up to a minute.
 */
async function startOnFreePort(hostPort: number, container: () => GenericContainer): Promise<StartedTestContainer> {
  const deadline = Date.now() + PORT_FREE_WAIT_MS;
  for (;;) {
    try {
      return await container().start();
    } catch (err) {
      if (!/address already in use/i.test(String((err as Error).message)) || Date.now() > deadline) throw err;
      await removeCreated();
      while (!(await portFree(hostPort)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 1_000));
    }
  }
}

/** Removes this run's containers that were created but never started (a refused port binding). */
async function removeCreated(): Promise<void> {
  const client = await getContainerRuntimeClient();
  const own = ownerLabel()[STACK_LABEL];
  for (const info of await stackContainers()) {
    if (info.Labels?.[STACK_LABEL] !== own || info.State !== "created") continue;
    await client.container
      .getById(info.Id)
      .remove({ force: true, v: true })
      .catch(() => undefined);
  }
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen({ port, host: "0.0.0.0", exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * Restarts the container stack's broker, keeping its data (the container's own file system), and
 * waits until it answers again, as `infra/stack.sh up kafka` does for the local one.
 */
export async function restartKafkaContainer(id: string): Promise<void> {
  const client = await getContainerRuntimeClient();
  await client.container.restart(client.container.getById(id), { timeout: 30 });
  const env = { KAFKA_BROKERS: process.env["KAFKA_BROKERS"] ?? "", KAFKA_SSL_CA_FILE: process.env["KAFKA_SSL_CA_FILE"] ?? "" };
  const dir = process.env["KAFKA_PRINCIPALS_DIR"] ?? "";
  await kafkaAnswers(env, readFileSync(`${dir}/hashrelay-admin`, "utf8").trim(), 120_000);
}
