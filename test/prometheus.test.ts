/**
 * The Prometheus configuration and alert rules in infra/prometheus/: promtool accepts the config
 * and the rules and passes the rules' unit tests (infra/prometheus/tests/); every alert says
 * whether it pages, points at its section of docs/operators.md, and every series it reads is one
 * a service exports. promtool comes with Debian's prometheus package, which `make setup` installs;
 * where it cannot be installed the promtool checks are skipped (and say so) unless
 * HASHRELAY_REQUIRE_PROMTOOL is set. Needs nothing running.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { REPO_ROOT } from "../services/shared/config.ts";

const PROMETHEUS = join(REPO_ROOT, "infra", "prometheus");
const RULE_FILES = readdirSync(join(PROMETHEUS, "rules")).filter((f) => f.endsWith(".yml"));

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

const rules: Rule[] = RULE_FILES.flatMap((f) =>
  (parse(readFileSync(join(PROMETHEUS, "rules", f), "utf8")) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules),
);
const alerts = rules.filter((r): r is Rule & { alert: string } => r.alert !== undefined);

const promtool = spawnSync("promtool", ["--version"], { encoding: "utf8" });
const havePromtool = promtool.status === 0;
const requirePromtool = Boolean(process.env["HASHRELAY_REQUIRE_PROMTOOL"]);

function runPromtool(args: string[]): { status: number | null; output: string } {
  const r = spawnSync("promtool", args, { cwd: PROMETHEUS, encoding: "utf8", timeout: 60_000 });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** Every series name a service defines (`name: "hashrelay_..."` in services/), besides Prometheus' own `up`. */
function exportedSeries(): Set<string> {
  const names = new Set(["up"]);
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, e.name);
      if (e.isDirectory()) walk(full);
      else if (e.name.endsWith(".ts") && !e.name.endsWith(".test.ts")) {
        for (const m of readFileSync(full, "utf8").matchAll(/name: "(hashrelay_[a-z_]+)"/g)) names.add(m[1] as string);
      }
    }
  };
  walk(join(REPO_ROOT, "services"));
  return names;
}

describe("Prometheus alert rules", () => {
  it("has the alerts operators are promised, each marked as paging or not", () => {
    expect(alerts.map((a) => a.alert)).toEqual(
      expect.arrayContaining([
        "HashrelayPartnerLagHigh",
        "HashrelayFeedPartitionHalted",
        "HashrelayDeadLetterGrowing",
        "HashrelayOutboxNotDraining",
        "HashrelayKeyExpiringSoon",
        "HashrelayFeedExportStale",
      ]),
    );
    for (const a of alerts) expect([a.alert, a.labels?.["severity"]]).toEqual([a.alert, expect.stringMatching(/^(page|ticket)$/)]);
    // Bad input from outside is a ticket at most: the demo's bad records must page nobody.
    const paging = alerts.filter((a) => a.labels?.["severity"] === "page").map((a) => a.alert);
    expect(paging).not.toContain("HashrelayDeadLetterGrowing");
    expect(paging).not.toContain("HashrelaySignatureFailures");
  });

  it("points every alert at its section of docs/operators.md", () => {
    const docs = readFileSync(join(REPO_ROOT, "docs", "operators.md"), "utf8");
    const headings = new Set([...docs.matchAll(/^#{2,4} (.+)$/gm)].map((m) => (m[1] as string).trim().toLowerCase()));
    for (const a of alerts) {
      expect(a.annotations?.["runbook"]).toBe(`docs/operators.md#${a.alert.toLowerCase()}`);
      expect(a.annotations?.["summary"]?.length).toBeGreaterThan(10);
      expect(headings.has(a.alert.toLowerCase()), `docs/operators.md has no "### ${a.alert}" section`).toBe(true);
    }
  });

  it("reads only series the services export", () => {
    const exported = exportedSeries();
    for (const r of rules) {
      const used = [...r.expr.matchAll(/\b(hashrelay_[a-z_]+|up)\b/g)].map((m) => m[1] as string);
      expect(used.length, `${r.alert ?? r.record} reads no series`).toBeGreaterThan(0);
      for (const name of used) expect(exported.has(name), `${r.alert ?? r.record} reads ${name}, which no service exports`).toBe(true);
    }
  });
});

describe.skipIf(!havePromtool && !requirePromtool)(
  `promtool (${havePromtool ? promtool.stdout.split("\n")[0] : "not installed: make setup installs Debian's prometheus"})`,
  () => {
    it("accepts the config and the rule files", () => {
      const config = runPromtool(["check", "config", "prometheus.yml"]);
      expect(config.status, config.output).toBe(0);
      const checked = runPromtool(["check", "rules", ...RULE_FILES.map((f) => `rules/${f}`)]);
      expect(checked.status, checked.output).toBe(0);
      expect(checked.output).toContain(`SUCCESS: ${rules.length} rules found`);
    });

    it("passes the rules' unit tests: each alert fires when it should, and the demo's bad records page nobody", () => {
      const tests = readdirSync(join(PROMETHEUS, "tests")).filter((f) => f.endsWith(".yml"));
      expect(tests.length).toBeGreaterThan(0);
      const run = runPromtool(["test", "rules", ...tests.map((f) => `tests/${f}`)]);
      expect(run.status, run.output).toBe(0);
    });

    it("fails a rule whose expression does not parse (the check can fail)", () => {
      const file = join(mkdtempSync(join(tmpdir(), "hashrelay-rules-")), "broken.yml");
      writeFileSync(file, "groups:\n  - name: broken\n    rules:\n      - alert: Broken\n        expr: sum(hashrelay_outbox_messages\n");
      const bad = runPromtool(["check", "rules", file]);
      expect(bad.status, bad.output).not.toBe(0);
      expect(bad.output).toMatch(/parse error|unclosed/i);
    });
  },
);
