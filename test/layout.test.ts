/**
 * Keeps the folder layout honest: which code may import which, read from the import statements of
 * every .ts file under services/ (static imports, re-exports and `import(...)`). Needs nothing running.
 *
 * - partner-sink and force-cli run outside the hub: they import only their own folder and
 *   services/shared/;
 * - the hub services ingest, dedup and distribution import no other service's folder (only the
 *   admin tool may reuse another service's core);
 * - services/shared/ imports no service folder;
 * - production code (non-test files under services/) imports nothing from test/, bench/ or demo/;
 *   tests beside the code may use test/support/ (fixtures), and nothing else of test/;
 * - no source comment or Markdown file names an issue by number: history belongs in commits.
 *
 * The rules are a pure function of (path, text) pairs, and the last tests feed it one violation
 * of each rule, so a rule that stops firing fails here rather than passing silently.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, posix, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const SKIPPED_DIRS = new Set(["node_modules", ".git", ".stack", "dist"]);

/** Folders under services/ whose code runs outside the hub. */
const OUTSIDE_HUB = new Set(["partner-sink", "force-cli"]);
/** Hub services that must not reach into one another. */
const HUB_SERVICES = new Set(["ingest", "dedup", "distribution"]);

interface SourceFile {
  /** Repository-relative, "/"-separated. */
  readonly path: string;
  readonly text: string;
}

/** Relative module specifiers of a file's static imports, re-exports and dynamic imports. */
function importSpecifiers(text: string): string[] {
  const specs: string[] = [];
  const patterns = [
    /^\s*(?:import|export)\b[^;]*?\bfrom\s*["']([^"']+)["']/gm,
    /^\s*import\s*["']([^"']+)["']/gm,
    /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g,
  ];
  for (const re of patterns) for (const m of text.matchAll(re)) specs.push(m[1] as string);
  return specs.filter((s) => s.startsWith("."));
}

/** The text of a TypeScript file's comments (line and block). */
function commentsOf(text: string): string {
  return [...text.matchAll(/\/\*[\s\S]*?\*\/|\/\/[^\n]*/g)].map((m) => m[0]).join("\n");
}

/** "services/<name>/..." → name ("shared" for services/shared/); null outside services/. */
function serviceOf(path: string): string | null {
  const m = /^services\/([^/]+)\//.exec(path);
  return m ? (m[1] as string) : null;
}

const isTest = (path: string) => path.endsWith(".test.ts");

// Built from parts so that this file does not match itself.
const ISSUE_REFERENCE = new RegExp(["\\bissue", "\\s*#?\\d+"].join(""), "i");

/** Every broken rule, one line each: "<file>: <what>". */
function layoutViolations(files: readonly SourceFile[]): string[] {
  const found: string[] = [];
  for (const f of files) {
    if (f.path.endsWith(".md")) {
      if (ISSUE_REFERENCE.test(f.text)) found.push(`${f.path}: names an issue by number (history goes in commit messages)`);
      continue;
    }
    if (ISSUE_REFERENCE.test(commentsOf(f.text))) {
      found.push(`${f.path}: a comment names an issue by number (history goes in commit messages)`);
    }
    const from = serviceOf(f.path);
    if (from === null) continue;
    for (const spec of importSpecifiers(f.text)) {
      const target = posix.normalize(posix.join(posix.dirname(f.path), spec));
      const to = serviceOf(target);
      const what = `${f.path}: imports ${target}`;
      if (/^(test|bench|demo)\//.test(target)) {
        if (!isTest(f.path)) found.push(`${what} (production code may not import test/, bench/ or demo/)`);
        else if (!target.startsWith("test/support/")) found.push(`${what} (a unit test may use test/support/ only)`);
        continue;
      }
      if (to === null || to === from || to === "shared") continue;
      if (from === "shared") found.push(`${what} (services/shared/ may not import a service)`);
      else if (OUTSIDE_HUB.has(from)) found.push(`${what} (${from} runs outside the hub: own folder and services/shared/ only)`);
      else if (HUB_SERVICES.has(from)) found.push(`${what} (hub services do not import one another; share it in services/shared/)`);
    }
  }
  return found;
}

function walk(dir: string, keep: (path: string) => boolean, out: string[] = []): string[] {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (SKIPPED_DIRS.has(entry.name)) continue;
    const full = join(dir, entry.name);
    if (entry.isDirectory()) walk(full, keep, out);
    else if (entry.isFile() && keep(entry.name)) out.push(full);
  }
  return out;
}

function load(paths: string[]): SourceFile[] {
  return paths.map((p) => ({ path: relative(ROOT, p).split("\\").join("/"), text: readFileSync(p, "utf8") }));
}

describe("folder layout", () => {
  it("every import under services/ respects the trust boundaries", () => {
    const files = load(walk(join(ROOT, "services"), (n) => n.endsWith(".ts")));
    expect(files.length).toBeGreaterThan(50);
    expect(layoutViolations(files)).toEqual([]);
  });

  it("no comment in a .ts file and no .md file names an issue by number", () => {
    const files = load(walk(ROOT, (n) => n.endsWith(".ts") || n.endsWith(".md"))).filter((f) => !serviceOf(f.path));
    expect(layoutViolations(files)).toEqual([]);
  });
});

describe("layout rules fire on violations", () => {
  const file = (path: string, text: string): SourceFile => ({ path, text });
  const one = (f: SourceFile) => layoutViolations([f]);

  it("parses static imports, re-exports, type imports and import(...)", () => {
    const text = [
      'import { a } from "./a.ts";',
      'import type { B } from "../b.ts";',
      'export { c } from "./c.ts";',
      'import "./side-effect.ts";',
      'const d = await import("../d.ts");',
      'import {\n  e,\n  f,\n} from "./ef.ts";',
      'import pg from "pg";',
    ].join("\n");
    expect(importSpecifiers(text).sort()).toEqual(["../b.ts", "../d.ts", "./a.ts", "./c.ts", "./ef.ts", "./side-effect.ts"]);
  });

  it("partner-sink and force-cli may not import the hub", () => {
    expect(one(file("services/partner-sink/bootstrap.ts", 'import { x } from "../distribution/exports.ts";'))).toHaveLength(1);
    expect(one(file("services/force-cli/formats/vics.ts", 'import type { X } from "../../ingest/intake.ts";'))).toHaveLength(1);
    expect(one(file("services/force-cli/cli.ts", 'const m = await import("../ingest/main.ts");'))).toHaveLength(1);
    const allowed = 'import { x } from "../shared/wire/codec.ts";\nimport { y } from "./client.ts";';
    expect(one(file("services/force-cli/cli.ts", allowed))).toEqual([]);
  });

  it("hub services may not import one another; admin may", () => {
    expect(one(file("services/distribution/planner.ts", 'import { x } from "../dedup/store.ts";'))).toHaveLength(1);
    expect(one(file("services/ingest/intake.test.ts", 'import { x } from "../dedup/engine.ts";'))).toHaveLength(1);
    expect(one(file("services/admin/cli.ts", 'import { x } from "../dedup/key-report.ts";'))).toEqual([]);
  });

  it("services/shared/ may not import a service", () => {
    expect(one(file("services/shared/wire/codec.ts", 'import { x } from "../../ingest/intake.ts";'))).toHaveLength(1);
  });

  it("production code may not import test/, bench/ or demo/; tests may use test/support/", () => {
    expect(one(file("services/dedup/engine.ts", 'import { x } from "../../test/support/fixtures.ts";'))).toHaveLength(1);
    expect(one(file("services/shared/audit.ts", 'import { x } from "../../bench/pipeline.ts";'))).toHaveLength(1);
    expect(one(file("services/ingest/http.ts", 'import { x } from "../../demo/workload.ts";'))).toHaveLength(1);
    expect(one(file("services/dedup/engine.test.ts", 'import { x } from "../../test/support/fixtures.ts";'))).toEqual([]);
    expect(one(file("services/dedup/engine.test.ts", 'import { x } from "../../bench/pipeline.ts";'))).toHaveLength(1);
  });

  it("issue numbers in comments and Markdown are refused, not in code", () => {
    const n = ["issue", "12"].join(" ");
    expect(one(file("services/dedup/engine.ts", `// a guard (${n})\nconst x = 1;`))).toHaveLength(1);
    expect(one(file("test/x.ts", `/**\n * see ${["issue", "#3"].join(" ")}\n */`))).toHaveLength(1);
    expect(one(file("docs/x.md", `Fixed in ${n}.`))).toHaveLength(1);
    expect(one(file("services/dedup/engine.ts", `const label = "${n}";`))).toEqual([]);
  });
});
