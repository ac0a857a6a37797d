/**
 * The demo's service processes: each service runs as its own process (Node runs the .ts file itself, so kill -9
 * reaches the service itself) and its own Kafka principal, logging to the run's work directory.
 * stopServices stops every one the demo started, and waits until they have exited.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "../services/shared/config.ts";
import { SERVICE_MALLOC_ENV, SERVICE_NODE_FLAGS } from "../services/shared/runtime-settings.ts";
import { info, stamp, workDir } from "./context.ts";

/** The environment every service gets (stack addresses, hub database, namespace); set once before the first start. */
export const serviceEnv: Record<string, string> = {};

/** The environment without Kafka credentials: each process then finds its own principal's. */
export function withoutKafkaCredentials(source: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { KAFKA_SASL_USERNAME: _user, KAFKA_SASL_PASSWORD: _password, ...rest } = source;
  return rest;
}

export const children: { name: string; child: ChildProcess }[] = [];

export function startService(name: string, service: string, extra: Record<string, string>): void {
  const log = createWriteStream(join(workDir, `${name}.log`));
  const child = spawn(process.execPath, [...SERVICE_NODE_FLAGS, `${REPO_ROOT}services/${service}/main.ts`], {
    // Node runs the .ts file itself (type stripping): kill -9 reaches the service, no wrapper between.
    cwd: REPO_ROOT,
    // Each service finds its own principal's credentials (services/shared/config.ts effectiveEnv);
    // credentials in the demo's own environment must not make them all run as one principal.
    env: { ...withoutKafkaCredentials(process.env), ...SERVICE_MALLOC_ENV, ...serviceEnv, ...extra },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  child.on("exit", (code, signal) => {
    if (!stopping) console.error(`  ! ${name} exited (${code ?? signal}); see ${join(workDir, `${name}.log`)}`);
  });
  children.push({ name, child });
  info(`started ${name} (pid ${child.pid}, log ${join(".stack", "demo", stamp, `${name}.log`)})`);
}

let stopping = false;
export async function stopServices(): Promise<void> {
  stopping = true;
  await Promise.all(
    children.map(
      ({ child }) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const t = setTimeout(() => child.kill("SIGKILL"), 15_000);
          child.once("exit", () => {
            clearTimeout(t);
            resolve();
          });
          child.kill("SIGTERM");
        }),
    ),
  );
}
