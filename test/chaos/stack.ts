/**
 * The chaos run's own stack, never the shared one: Kafka (three brokers), and unless another
 * server is named, its own PostgreSQL and S3, all under their own folder and ports through
 * infra/stack.sh. Only what this folder's pid files name is ever killed or stopped. Faults go
 * through here: kill or stop a broker (found by its role), restart PostgreSQL, pause a database.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Kafka } from "kafkajs";
import pg from "pg";
import { REPO_ROOT, localStackEnv } from "../../services/shared/config.ts";
import { createKafka, kafkaConnection } from "../../services/shared/kafka.ts";
import { ADMIN_PRINCIPAL } from "../../services/shared/kafka-access.ts";
import { createLogger } from "../../services/shared/logging.ts";
import type { BrokerRole } from "./schedule.ts";

const run = promisify(execFile);

export interface StackPorts {
  readonly kafka: number;
  readonly controller: number;
  readonly pg: number;
  readonly s3: number;
}

export interface ChaosStackOptions {
  readonly dir: string;
  readonly brokers: 1 | 3;
  readonly ports: StackPorts;
  /** A PostgreSQL and S3 to use instead of starting them (the short run inside `make test`). */
  readonly external?: { readonly env: Record<string, string> };
  readonly log: (line: string) => void;
}

export interface ChaosStack {
  readonly dir: string;
  readonly brokers: number;
  /** KAFKA_*, DATABASE_URL and S3_* as services take them. */
  readonly env: Record<string, string>;
  /** True when PostgreSQL runs in this stack (it may be restarted and its backends stopped). */
  readonly ownsPostgres: boolean;
  kafkaAs(principal: string, clientId: string): Kafka;
  /** Starts whatever of the stack is not running and waits until it answers. */
  up(what?: readonly ("kafka" | "pg" | "s3")[]): Promise<void>;
  /** Stops everything this stack started. */
  down(): Promise<void>;
  brokerPid(node: number): number | null;
  /** The node id a role names right now (the active controller, the leader of a canonical partition, any). */
  resolveBroker(role: BrokerRole, admin: ReturnType<Kafka["admin"]>, topics: readonly string[], pick: () => number): Promise<number>;
  signalBroker(node: number, signal: "SIGKILL" | "SIGTERM"): Promise<void>;
  /** Stops PostgreSQL (pg_ctl immediate: a crash; fast: a clean stop). */
  stopPostgres(mode: "immediate" | "fast"): Promise<void>;
}

/** The environment for infra/stack.sh: this stack's folder and ports, and nothing of the shared one. */
function stackScriptEnv(o: ChaosStackOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(KAFKA_|S3_|DATABASE_URL$|HASHRELAY_)/.test(k)) continue;
    env[k] = v;
  }
  return {
    ...env,
    HASHRELAY_STACK_DIR: o.dir,
    HASHRELAY_KAFKA_BROKERS: String(o.brokers),
    HASHRELAY_KAFKA_PORT: String(o.ports.kafka),
    HASHRELAY_KAFKA_CONTROLLER_PORT: String(o.ports.controller),
    HASHRELAY_PG_PORT: String(o.ports.pg),
    HASHRELAY_S3_PORT: String(o.ports.s3),
    HASHRELAY_START_TIMEOUT: "600",
    HASHRELAY_KAFKA_HEAP: process.env["HASHRELAY_KAFKA_HEAP"] ?? "512m",
  };
}

/** The jars come from the checkout's own .stack/lib (fetched by `make setup`), not fetched again. */
function linkJars(dir: string): void {
  mkdirSync(join(dir, "lib"), { recursive: true });
  for (const lib of ["kafka", "s3"]) {
    const mine = join(dir, "lib", lib);
    const shared = join(REPO_ROOT, ".stack", "lib", lib);
    if (!existsSync(mine) && existsSync(shared)) symlinkSync(shared, mine);
  }
}

function pidAlive(pid: number, marker: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ").includes(marker);
  } catch {
    return false;
  }
}

export async function openChaosStack(o: ChaosStackOptions): Promise<ChaosStack> {
  linkJars(o.dir);
  const script = join(REPO_ROOT, "infra", "stack.sh");
  const scriptEnv = stackScriptEnv(o);
  const stackSh = async (...args: string[]) => {
    try {
      await run(script, args, { env: scriptEnv, timeout: 900_000, maxBuffer: 8 << 20 });
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      throw new Error(`infra/stack.sh ${args.join(" ")} failed: ${e.stderr || e.stdout || e.message}`);
    }
  };
  const nodeDir = (n: number) => join(o.dir, "kafka-cluster", `node-${n}`);
  let env: Record<string, string> = {};
  const readEnv = () => {
    const own = localStackEnv(join(o.dir, "env"));
    env = o.external ? { ...o.external.env, ...pick(own, /^KAFKA_/) } : own;
  };
  const stack: ChaosStack = {
    dir: o.dir,
    brokers: o.brokers,
    get env() {
      return env;
    },
    ownsPostgres: !o.external,
    kafkaAs(principal, clientId) {
      const password = readFileSync(join(env["KAFKA_PRINCIPALS_DIR"] as string, principal), "utf8").trim();
      return createKafka({
        ...kafkaConnection({
          KAFKA_BROKERS: (env["KAFKA_BROKERS"] as string).split(","),
          KAFKA_SSL: "true",
          KAFKA_SSL_CA_FILE: env["KAFKA_SSL_CA_FILE"] as string,
          KAFKA_SASL_MECHANISM: "scram-sha-512",
          KAFKA_SASL_USERNAME: principal,
          KAFKA_SASL_PASSWORD: password,
        }),
        clientId,
        retries: 12,
        // The driver's own clients see every broker fault it causes: their retries are expected, not news.
        logger: createLogger("chaos-driver", "silent"),
      });
    },
    async up(what = o.external ? ["kafka"] : ["kafka", "pg", "s3"]) {
      await stackSh("up", ...what);
      readEnv();
    },
    async down() {
      await stackSh("down");
    },
    brokerPid(node) {
      const file = o.brokers > 1 ? join(o.dir, `kafka-${node}.pid`) : join(o.dir, "kafka.pid");
      if (!existsSync(file)) return null;
      const pid = Number(readFileSync(file, "utf8").trim());
      const marker = o.brokers > 1 ? join(nodeDir(node), "server.properties") : join(o.dir, "kafka", "server.properties");
      return Number.isInteger(pid) && pidAlive(pid, marker) ? pid : null;
    },
    async resolveBroker(role, admin, topics, choose) {
      const live = Array.from({ length: o.brokers }, (_, i) => i + 1).filter((n) => stack.brokerPid(n) !== null);
      if (role === "controller") {
        const controller = activeController(o.dir, o.brokers);
        if (controller !== null && live.includes(controller)) return controller;
      }
      if (role === "leader") {
        const { topics: meta } = await admin.fetchTopicMetadata({ topics: [...topics] });
        const leaders = meta.flatMap((t) => t.partitions.map((p) => p.leader)).filter((l) => live.includes(l));
        if (leaders.length) return leaders[Math.floor(choose() * leaders.length)] as number;
      }
      return live[Math.floor(choose() * live.length)] ?? 1;
    },
    async signalBroker(node, signal) {
      const pid = stack.brokerPid(node);
      if (pid === null) return;
      process.kill(pid, signal);
      const deadline = Date.now() + 120_000;
      while (pidAlive(pid, "kafka") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      if (pidAlive(pid, "kafka")) process.kill(pid, "SIGKILL");
    },
    async stopPostgres(mode) {
      if (o.external) throw new Error("the chaos stack does not own its PostgreSQL: no restart");
      const data = join(o.dir, "pg", "data");
      const pgCtl = join(postgresBin(), "pg_ctl");
      const args = ["-D", data, "-m", mode, "-w", "-t", "60", "stop"];
      if (process.getuid?.() === 0) await run("runuser", ["-u", "postgres", "--", pgCtl, ...args], { timeout: 90_000 });
      else await run(pgCtl, args, { timeout: 90_000 });
    },
  };
  o.log(
    `  starting the chaos stack in ${o.dir} (${o.brokers} broker${o.brokers > 1 ? "s" : ""}${o.external ? ", shared PostgreSQL and S3" : ""})...`,
  );
  const t0 = Date.now();
  try {
    await stack.up();
  } catch (err) {
    // Whatever did start (s3proxy, a broker) is this folder's own: stop it again.
    await stack.down().catch(() => undefined);
    throw err;
  }
  o.log(`  stack up in ${((Date.now() - t0) / 1000).toFixed(0)} s: ${env["KAFKA_BROKERS"]}`);
  return stack;
}

function pick(env: Record<string, string>, re: RegExp): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter(([k]) => re.test(k)));
}

/**
 * The active KRaft controller: the leader named by the newest epoch in the nodes' quorum-state
 * files (each node rewrites its file when the epoch changes).
 */
export function activeController(dir: string, brokers: number): number | null {
  let best: { epoch: number; leader: number } | null = null;
  for (let n = 1; n <= brokers; n++) {
    const file = join(dir, "kafka-cluster", `node-${n}`, "data", "__cluster_metadata-0", "quorum-state");
    try {
      const state = JSON.parse(readFileSync(file, "utf8")) as { leaderId?: number; leaderEpoch?: number };
      if (typeof state.leaderId === "number" && state.leaderId > 0 && (best === null || (state.leaderEpoch ?? -1) > best.epoch)) {
        best = { epoch: state.leaderEpoch ?? -1, leader: state.leaderId };
      }
    } catch {
      /* a node that never started has no file */
    }
  }
  return best?.leader ?? null;
}

/** The PostgreSQL server binaries stack.sh uses: the newest /usr/lib/postgresql/<v>/bin. */
function postgresBin(): string {
  const versions = existsSync("/usr/lib/postgresql")
    ? readdirSync("/usr/lib/postgresql")
        .filter((v) => existsSync(`/usr/lib/postgresql/${v}/bin/pg_ctl`))
        .sort((a, b) => Number(a) - Number(b))
    : [];
  const v = versions.at(-1);
  return v ? `/usr/lib/postgresql/${v}/bin` : "";
}

/** A connection to a database of the stack's server as its superuser (pauses, checks, set-up). */
export async function adminClient(databaseUrl: string, database?: string): Promise<pg.Client> {
  const url = new URL(databaseUrl);
  if (database) url.pathname = `/${database}`;
  const c = new pg.Client({ connectionString: url.toString(), application_name: "hashrelay-chaos" });
  await c.connect();
  return c;
}

/** The admin principal's Kafka client (topics, ACLs, reading topics back). */
export const adminKafka = (stack: ChaosStack): Kafka => stack.kafkaAs(ADMIN_PRINCIPAL, "hashrelay-chaos");
