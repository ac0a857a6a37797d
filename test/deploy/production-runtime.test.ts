/**
 * What runs in production is Node 24 on the .ts sources with production dependencies only
 * (`npm ci --omit=dev`): no compiler, loader or test runner. This follows every entry point's
 * imports and fails when one reaches a package that is not a production dependency, a test,
 * bench or demo file, or syntax Node cannot strip; it also holds the Dockerfile to that, and to the
 * services' memory settings (services/shared/runtime-settings.ts).
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../services/shared/config.ts";
import { SERVICE_MALLOC_ENV, SERVICE_NODE_FLAGS } from "../../services/shared/runtime-settings.ts";

interface PackageJson {
  engines?: { node?: string };
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}
const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as PackageJson;
const production = new Set(Object.keys(pkg.dependencies ?? {}));

/** The programs someone runs: each bin/ script's target and each service's main.ts. */
function entryPoints(): string[] {
  const bins = ["hashrelay", "hashrelay-ingest", "hashrelay-sink"].map((b) => {
    const script = readFileSync(join(REPO_ROOT, "bin", b), "utf8");
    const target = /"\$here\/(services\/[^"]+\.ts)"/.exec(script)?.[1];
    if (!target) throw new Error(`bin/${b} names no services/**/*.ts entry point`);
    return target;
  });
  return [...bins, "services/ingest/main.ts", "services/dedup/main.ts", "services/distribution/main.ts", "services/partner-sink/main.ts"];
}

// Runtime imports only: `import type` and `export type` vanish when Node strips the types.
const IMPORT = /^\s*(?:import|export)\s+(?!type\s)(?:[^"';]*?\sfrom\s+)?["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/gm;

function packageName(specifier: string): string {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? `${parts[0]}/${parts[1]}` : (parts[0] ?? specifier);
}

/** Every file and bare package reachable from `entry` through runtime imports. */
function reachable(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    const source = readFileSync(join(REPO_ROOT, file), "utf8");
    for (const m of source.matchAll(IMPORT)) {
      const spec = m[1] ?? m[2];
      if (!spec) continue;
      if (spec.startsWith(".")) visit(relative(REPO_ROOT, resolve(REPO_ROOT, dirname(file), spec)));
      else if (!spec.startsWith("node:") && !builtinModules.includes(spec)) packages.add(packageName(spec));
    }
  };
  visit(entry);
  return { files, packages };
}

describe("production runtime", () => {
  it("is Node 24, as package.json asks and as make and the tests run it", () => {
    expect(pkg.engines?.node).toMatch(/^>=24 <25$/);
    expect(process.version).toMatch(/^v24\./);
    // The node a service or bin/ script starts from PATH (what make exports) is the same major.
    expect(execFileSync("node", ["--version"]).toString().trim()).toMatch(/^v24\./);
  });

  it.each(entryPoints())("%s reaches only production dependencies and production files", (entry) => {
    const { files, packages } = reachable(entry);
    const notProduction = [...packages].filter((p) => !production.has(p));
    expect(notProduction, `${entry} imports packages that npm ci --omit=dev leaves out`).toEqual([]);
    const strays = [...files].filter((f) => !f.startsWith("services/") || f.endsWith(".test.ts"));
    expect(strays, `${entry} imports test, bench or demo code`).toEqual([]);
  });

  it("detects a development dependency (the check can fail)", () => {
    expect(reachable("test/deploy/production-runtime.test.ts").packages.has("vitest")).toBe(true);
    expect(production.has("vitest")).toBe(false);
  });

  it("runs each CLI with plain node, no loader and no TypeScript package", () => {
    for (const entry of entryPoints()) {
      if (!entry.endsWith("cli.ts")) continue;
      const out = execFileSync(process.execPath, [join(REPO_ROOT, entry), "--help"], {
        cwd: REPO_ROOT,
        env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "/tmp" },
      }).toString();
      expect(out).toMatch(/Usage:/);
    }
  });

  it("builds the image from production dependencies and starts services with plain node", () => {
    const dockerfile = readFileSync(join(REPO_ROOT, "infra", "deploy", "Dockerfile"), "utf8");
    // Node 24 by default; infra/images/build.sh passes its own Node 24 image where no registry answers.
    expect(dockerfile).toMatch(/^ARG NODE_IMAGE=node:24[-.\w]*$/m);
    const froms = dockerfile.split("\n").filter((l) => l.startsWith("FROM "));
    for (const from of froms) expect(from).toMatch(/^FROM (\$\{NODE_IMAGE\}|runtime) AS [a-z-]+$/);
    expect(dockerfile).toMatch(/npm ci --omit=dev/);
    // Both targets (hub, partner-sink) start plain node as the numeric non-root user the manifests run.
    expect(dockerfile.match(/^ENTRYPOINT \["node"\]$/gm)).toHaveLength(2);
    expect(dockerfile.match(/^USER 1000:1000$/gm)).toHaveLength(2);
    expect(dockerfile).not.toMatch(/tsx|tsc|--import/);
    // The services' memory settings: malloc's in the image's environment, V8's in its default command
    // (as in the manifests' arguments).
    const cmd = [...SERVICE_NODE_FLAGS, "services/ingest/main.ts"].map((a) => JSON.stringify(a)).join(", ");
    expect(dockerfile.split("\n")).toContain(`CMD [${cmd}]`);
    const env = Object.entries(SERVICE_MALLOC_ENV).map(([k, v]) => `${k}=${v}`);
    expect(dockerfile.split("\n")).toContain(`ENV ${env.join(" ")}`);
    for (const dev of Object.keys(pkg.devDependencies ?? {})) expect(production.has(dev)).toBe(false);
  });
});
