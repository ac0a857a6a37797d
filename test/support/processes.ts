/**
 * Running services as real child processes, so tests can kill -9 them mid-stream. Like a
 * process manager in production (systemd Restart=on-failure, Kubernetes), a service that exits
 * on its own with an error is started again; one the test kills stays down until restarted.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { REPO_ROOT } from "../../services/shared/config.ts";
import { SERVICE_MALLOC_ENV, SERVICE_NODE_FLAGS } from "../../services/shared/runtime-settings.ts";

export interface ServiceProcess {
  readonly child: ChildProcess;
  readonly output: string[];
  /** How many times the supervisor restarted it after a failure. */
  readonly restarts: number;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

export function startServiceProcess(service: string, env: Record<string, string>): ServiceProcess {
  const output: string[] = [];
  const keep = (chunk: Buffer) => {
    output.push(chunk.toString());
    if (output.length > 400) output.splice(0, output.length - 400);
  };
  let stopped = false;
  let restarts = 0;
  const launch = (): ChildProcess => {
    // The memory settings of production (runtime-settings.ts), so memory measured here is what a deployment sees.
    const c = spawn(process.execPath, [...SERVICE_NODE_FLAGS, `${REPO_ROOT}services/${service}/main.ts`], {
      // Node runs the .ts file itself (type stripping): kill -9 reaches the service, no wrapper between.
      cwd: REPO_ROOT,
      env: { ...process.env, ...SERVICE_MALLOC_ENV, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    c.stdout?.on("data", keep);
    c.stderr?.on("data", keep);
    c.on("exit", (code) => {
      if (stopped || code === 0) return;
      output.push(`[supervisor] ${service} exited with ${code}; restarting\n`);
      restarts++;
      setTimeout(() => {
        if (!stopped) handle.child = launch();
      }, 1_000);
    });
    return c;
  };
  const handle = {
    child: launch(),
    output,
    get restarts() {
      return restarts;
    },
    kill(signal: NodeJS.Signals = "SIGKILL") {
      stopped = true;
      const child = handle.child;
      return new Promise<number | null>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
        child.once("exit", (code) => resolve(code));
        child.kill(signal);
      });
    },
  };
  return handle;
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 60_000, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
