/**
 * A private Prometheus for a test: Debian's binary with infra/prometheus/'s config and rules,
 * copied into a temporary folder with a targets file naming the test's services, on a port of its
 * own. `available` is false where the binary is not installed (`make setup` installs it).
 */
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "../../services/shared/config.ts";
import { waitFor } from "./processes.ts";

export const prometheusAvailable = spawnSync("prometheus", ["--version"]).status === 0;

export interface PrometheusTarget {
  /** host:port */
  readonly address: string;
  readonly labels: Record<string, string>;
}

export interface ActiveTarget {
  readonly labels: Record<string, string>;
  readonly health: "up" | "down" | "unknown";
  readonly lastError: string;
  readonly lastScrape: string;
}

export interface PrometheusAlert {
  readonly labels: Record<string, string>;
  readonly state: "pending" | "firing";
}

export interface TestPrometheus {
  readonly url: string;
  targets(): Promise<ActiveTarget[]>;
  alerts(): Promise<PrometheusAlert[]>;
  /** An instant query's result, as the HTTP API gives it. */
  query(promql: string): Promise<unknown>;
  /** Rule groups as Prometheus loaded them: name, health and last error of each rule. */
  rules(): Promise<{ name: string; health: string; lastError?: string }[]>;
  stop(): Promise<void>;
}

async function api<T>(url: string, path: string): Promise<T> {
  const res = await fetch(new URL(path, url));
  const body = (await res.json()) as { status: string; data: T; error?: string };
  if (body.status !== "success") throw new Error(`Prometheus ${path}: ${body.error ?? res.status}`);
  return body.data;
}

export async function startTestPrometheus(targets: readonly PrometheusTarget[]): Promise<TestPrometheus> {
  const dir = mkdtempSync(join(tmpdir(), "hashrelay-prometheus-"));
  cpSync(join(REPO_ROOT, "infra", "prometheus", "prometheus.yml"), join(dir, "prometheus.yml"));
  cpSync(join(REPO_ROOT, "infra", "prometheus", "rules"), join(dir, "rules"), { recursive: true });
  mkdirSync(join(dir, "targets"));
  writeFileSync(join(dir, "targets", "test.json"), JSON.stringify(targets.map((t) => ({ targets: [t.address], labels: t.labels }))));
  const port = 30_000 + Math.floor(Math.random() * 10_000);
  const output: string[] = [];
  const child: ChildProcess = spawn(
    "prometheus",
    [`--config.file=${join(dir, "prometheus.yml")}`, `--storage.tsdb.path=${join(dir, "data")}`, `--web.listen-address=127.0.0.1:${port}`],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  child.stdout?.on("data", (d: Buffer) => output.push(d.toString()));
  child.stderr?.on("data", (d: Buffer) => output.push(d.toString()));
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor("Prometheus ready", async () => child.exitCode === null && (await fetch(`${url}/-/ready`)).ok, 30_000);
  } catch (err) {
    child.kill("SIGKILL");
    throw new Error(`${(err as Error).message}\n${output.join("").slice(-2000)}`);
  }
  return {
    url,
    targets: async () => (await api<{ activeTargets: ActiveTarget[] }>(url, "/api/v1/targets")).activeTargets,
    alerts: async () => (await api<{ alerts: PrometheusAlert[] }>(url, "/api/v1/alerts")).alerts,
    query: async (promql: string) => (await api<{ result: unknown }>(url, `/api/v1/query?query=${encodeURIComponent(promql)}`)).result,
    rules: async () =>
      (await api<{ groups: { rules: { name: string; health: string; lastError?: string }[] }[] }>(url, "/api/v1/rules")).groups.flatMap(
        (g) => g.rules,
      ),
    async stop() {
      if (child.exitCode === null) {
        await new Promise<void>((resolve) => {
          child.once("exit", () => resolve());
          child.kill("SIGTERM");
        });
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
