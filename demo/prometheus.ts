/**
 * The demo's Prometheus: the local one `make demo` starts (`infra/stack.sh up prometheus`, address
 * and target folder in .stack/env) scrapes every service of the run through a target file named
 * after the run's stamp, removed at the end. The summary says whether every target is up and which
 * alerts fired; a page fails the demo, since its deliberate bad records must not cause one. Without
 * a running Prometheus the demo says so and goes on.
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { env, info, stamp, waitUntil } from "./context.ts";

export interface DemoTarget {
  readonly service: string;
  readonly partner?: string;
  /** http://host:port of the service's /metrics */
  readonly url: string;
}

export interface Monitoring {
  readonly prometheusUrl: string;
  readonly file: string;
  readonly instances: ReadonlySet<string>;
}

interface ActiveTarget {
  readonly labels: Record<string, string>;
  readonly health: string;
  readonly lastError: string;
  readonly lastScrape: string;
}

interface Alert {
  readonly labels: Record<string, string>;
  readonly state: "pending" | "firing";
}

async function api<T>(base: string, path: string): Promise<T> {
  const res = await fetch(new URL(path, base), { signal: AbortSignal.timeout(5_000) });
  const body = (await res.json()) as { status: string; data: T; error?: string };
  if (body.status !== "success") throw new Error(`Prometheus ${path}: ${body.error ?? res.status}`);
  return body.data;
}

async function ours(m: Monitoring): Promise<ActiveTarget[]> {
  const { activeTargets } = await api<{ activeTargets: ActiveTarget[] }>(m.prometheusUrl, "/api/v1/targets");
  const order = [...m.instances];
  const rank = (t: ActiveTarget) => order.indexOf(t.labels["instance"] ?? "");
  return activeTargets.filter((t) => rank(t) >= 0).sort((a, b) => rank(a) - rank(b));
}

/** Registers the run's services with the local Prometheus; null (and a note) when none runs. */
export async function watchServices(targets: readonly DemoTarget[]): Promise<Monitoring | null> {
  const prometheusUrl = env["PROMETHEUS_URL"];
  const dir = env["PROMETHEUS_TARGETS_DIR"];
  const up = prometheusUrl
    ? await fetch(`${prometheusUrl}/-/ready`).then(
        (r) => r.ok,
        () => false,
      )
    : false;
  if (!prometheusUrl || !dir || !up) {
    info("Prometheus is not running: no monitoring in this run (make demo starts it when Debian's prometheus is installed)");
    return null;
  }
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `demo-${stamp}.json`);
  const entries = targets.map((t) => ({
    targets: [new URL(t.url).host],
    labels: { service: t.service, ...(t.partner ? { partner: t.partner } : {}), demo: stamp },
  }));
  writeFileSync(file, JSON.stringify(entries, null, 2));
  const m: Monitoring = { prometheusUrl, file, instances: new Set(targets.map((t) => new URL(t.url).host)) };
  // Scraped before the workload: what follows shows as change (the dead-letter ticket needs that).
  await waitUntil(
    `Prometheus (${prometheusUrl}) scrapes all ${targets.length} services`,
    async () => {
      const found = await ours(m);
      return found.length === targets.length && found.every((t) => t.health === "up");
    },
    60_000,
  );
  return m;
}

export interface MonitoringReport {
  readonly prometheusUrl: string;
  readonly targets: readonly ActiveTarget[];
  readonly expected: number;
  readonly alerts: readonly Alert[];
  /** Messages not yet applied, per service (and partner), as Prometheus last scraped them. */
  readonly lag: readonly { labels: Record<string, string>; value: string }[];
}

/** Waits until Prometheus scraped every service after `since` and evaluated its rules once more, then reads targets and alerts. */
export async function monitoringReport(m: Monitoring, since: number): Promise<MonitoringReport> {
  await waitUntil(
    "Prometheus scraped every service after the workload settled",
    async () => (await ours(m)).every((t) => Date.parse(t.lastScrape) > since),
    60_000,
  ).catch(() => info("some services were not scraped since; reporting what Prometheus has"));
  // One evaluation interval (infra/prometheus/prometheus.yml), so that the rules saw those scrapes.
  await new Promise((r) => setTimeout(r, 6_000));
  const targets = await ours(m);
  const { alerts } = await api<{ alerts: Alert[] }>(m.prometheusUrl, "/api/v1/alerts");
  // This run's alerts: on its own instances, or aggregated ones (by partner) without an instance.
  const mine = alerts.filter((a) => !a.labels["instance"] || m.instances.has(a.labels["instance"]));
  const query = encodeURIComponent(`sum by (service, partner) (hashrelay_consumer_lag_messages{demo="${stamp}"})`);
  const { result } = await api<{ result: { metric: Record<string, string>; value: [number, string] }[] }>(
    m.prometheusUrl,
    `/api/v1/query?query=${query}`,
  );
  return {
    prometheusUrl: m.prometheusUrl,
    targets,
    expected: m.instances.size,
    alerts: mine,
    lag: result.map((r) => ({ labels: r.metric, value: r.value[1] })),
  };
}

const nameOf = (labels: Record<string, string>) => [labels["service"], labels["partner"]].filter(Boolean).join(" ");

/** The summary's monitoring lines; true when every target is up and nothing pages. */
export function printMonitoring(r: MonitoringReport | null): boolean {
  if (!r) {
    console.log("prometheus:               not running (no monitoring checks in this run)");
    return true;
  }
  const up = r.targets.filter((t) => t.health === "up");
  console.log(
    `prometheus:               ${up.length}/${r.expected} targets up (${r.targets.map((t) => `${nameOf(t.labels)} ${t.health}`).join(", ")}) at ${r.prometheusUrl}`,
  );
  for (const t of r.targets.filter((x) => x.health !== "up")) console.log(`  ${nameOf(t.labels)}: ${t.lastError}`);
  console.log(`lag (as scraped):         ${r.lag.map((l) => `${nameOf(l.labels)} ${l.value}`).join(", ") || "no series"}`);
  const describe = (a: Alert) =>
    `${a.labels["alertname"]} (${a.labels["severity"]}${a.labels["partner"] ? `, ${a.labels["partner"]}` : ""})`;
  const firing = r.alerts.filter((a) => a.state === "firing");
  const pending = r.alerts.filter((a) => a.state === "pending");
  const paging = firing.filter((a) => a.labels["severity"] === "page");
  console.log(`alerts firing:            ${firing.map(describe).join(", ") || "none"}`);
  if (pending.length) console.log(`alerts pending:           ${pending.map(describe).join(", ")}`);
  console.log(
    `paging alerts:            ${paging.length ? `${paging.map(describe).join(", ")} (FAILED: the demo must page nobody)` : "none"}`,
  );
  return up.length === r.expected && paging.length === 0;
}

/** Takes the run's services out of Prometheus' targets. */
export function unwatchServices(m: Monitoring | null): void {
  if (m) rmSync(m.file, { force: true });
}
