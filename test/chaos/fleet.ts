/**
 * The chaos run's service processes: every instance is its own node process (kill -9 reaches the
 * service itself), logging to a file of the run, and restarted like a process manager would when it
 * exits on its own with an error. An instance the schedule kills stays down until the schedule
 * starts it again. Each process also writes its memory (heap-probe.ts) to a file of the run.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { createWriteStream, readFileSync } from "node:fs";
import type { WriteStream } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { REPO_ROOT } from "../../services/shared/config.ts";
import { SERVICE_MALLOC_ENV, SERVICE_NODE_FLAGS } from "../../services/shared/runtime-settings.ts";

export interface InstanceSpec {
  /** "dedup-2": the service's name, and the instance number when there are several. */
  readonly name: string;
  readonly service: "ingest" | "dedup" | "distribution" | "partner-sink";
  readonly env: Record<string, string>;
}

export interface Instance {
  readonly spec: InstanceSpec;
  /** The running process, or null while it is down. */
  readonly child: ChildProcess | null;
  /** Times it exited on its own with an error and was started again. */
  readonly crashes: number;
  /** Times the schedule killed it. */
  readonly kills: number;
  readonly logFile: string;
  readonly heapFile: string;
}

/** One memory reading written by heap-probe.ts. */
export interface HeapReading {
  readonly t: number;
  readonly pid: number;
  readonly rss: number;
  readonly heapUsed: number;
  readonly heapTotal: number;
}

const HEAP_PROBE = pathToFileURL(join(import.meta.dirname, "heap-probe.ts")).href;
/** Variables of the driver's environment that must not reach a service (its own stack settings come in the spec). */
const NOT_INHERITED = /^(KAFKA_SASL_USERNAME|KAFKA_SASL_PASSWORD|NODE_OPTIONS)$/;

export class Fleet {
  private readonly instances = new Map<string, InstanceState>();
  private stopping = false;

  private readonly runDir: string;

  constructor(runDir: string) {
    this.runDir = runDir;
  }

  add(spec: InstanceSpec): void {
    const state: InstanceState = {
      spec,
      child: null,
      crashes: 0,
      kills: 0,
      down: true,
      logFile: join(this.runDir, `${spec.name}.log`),
      heapFile: join(this.runDir, `${spec.name}.heap.jsonl`),
      log: null,
    };
    state.log = createWriteStream(state.logFile, { flags: "a" });
    this.instances.set(spec.name, state);
  }

  names(): string[] {
    return [...this.instances.keys()];
  }

  get(name: string): Instance {
    const s = this.instances.get(name);
    if (!s) throw new Error(`no instance ${name}`);
    return s;
  }

  all(): Instance[] {
    return [...this.instances.values()];
  }

  isUp(name: string): boolean {
    return !this.state(name).down;
  }

  start(name: string): void {
    const s = this.state(name);
    if (!s.down) return;
    s.down = false;
    this.launch(s);
  }

  startAll(): void {
    for (const name of this.instances.keys()) this.start(name);
  }

  /** Stops an instance with the signal and waits until it has exited; it stays down until start(). */
  async stop(name: string, signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const s = this.state(name);
    s.down = true;
    if (signal === "SIGKILL") s.kills++;
    const child = s.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    s.log?.write(`[chaos] ${new Date().toISOString()} ${signal} ${name} (pid ${child.pid})\n`);
    await new Promise<void>((resolve) => {
      const force = signal === "SIGKILL" ? null : setTimeout(() => child.kill("SIGKILL"), 20_000);
      child.once("exit", () => {
        if (force) clearTimeout(force);
        resolve();
      });
      child.kill(signal);
    });
  }

  /** Stops every instance cleanly (SIGTERM, SIGKILL after 20 s) and closes the logs. */
  async stopAll(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.names().map((n) => this.stop(n, "SIGTERM")));
    for (const s of this.instances.values()) s.log?.end();
  }

  /** The memory readings an instance's processes wrote, oldest first. */
  heapReadings(name: string): HeapReading[] {
    try {
      return readFileSync(this.state(name).heapFile, "utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as HeapReading);
    } catch {
      return [];
    }
  }

  /** The last lines an instance logged, for a report that something did not settle. */
  tail(name: string, lines = 15): string {
    try {
      return readFileSync(this.state(name).logFile, "utf8").split("\n").slice(-lines).join("\n");
    } catch {
      return "";
    }
  }

  private state(name: string): InstanceState {
    const s = this.instances.get(name);
    if (!s) throw new Error(`no instance ${name}`);
    return s;
  }

  private launch(s: InstanceState): void {
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !NOT_INHERITED.test(k)));
    const child = spawn(process.execPath, [...SERVICE_NODE_FLAGS, `${REPO_ROOT}services/${s.spec.service}/main.ts`], {
      cwd: REPO_ROOT,
      env: {
        ...inherited,
        ...SERVICE_MALLOC_ENV,
        ...s.spec.env,
        NODE_OPTIONS: `--import=${HEAP_PROBE}`,
        CHAOS_HEAP_FILE: s.heapFile,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    s.child = child;
    child.stdout?.on("data", (c: Buffer) => s.log?.write(c));
    child.stderr?.on("data", (c: Buffer) => s.log?.write(c));
    child.on("exit", (code, signal) => {
      if (s.child !== child) return;
      s.child = null;
      if (s.down || this.stopping) return;
      // Exited on its own: a process manager starts it again (and so does this one).
      s.crashes++;
      s.log?.write(`[chaos] ${new Date().toISOString()} ${s.spec.name} exited (${code ?? signal}); restarting in 1 s\n`);
      setTimeout(() => {
        if (!s.down && !this.stopping && s.child === null) this.launch(s);
      }, 1_000);
    });
  }
}

interface InstanceState {
  readonly spec: InstanceSpec;
  child: ChildProcess | null;
  crashes: number;
  kills: number;
  down: boolean;
  readonly logFile: string;
  readonly heapFile: string;
  log: WriteStream | null;
}
