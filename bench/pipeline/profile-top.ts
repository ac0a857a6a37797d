/**
 * Prints the functions with the most self time in V8 CPU profiles (the .cpuprofile files that the
 * pipeline benchmark's --profile writes to bench-results/profiles/), each as a share of the
 * profile's samples; (idle) and (program) count as functions, so the shares add up to 100%.
 *
 *   node bench/pipeline/profile-top.ts bench-results/profiles/dedup.cpuprofile [--top 25] [--from s] [--to s]
 *
 * --from and --to keep only the samples taken that many seconds after the profile started (e.g.
 * an idle window, leaving start-up out).
 */
import { readFileSync } from "node:fs";
import { relative } from "node:path";
import { REPO_ROOT } from "../../services/shared/config.ts";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function where(url: string): string {
  const path = url.startsWith("file://") ? relative(REPO_ROOT, new URL(url).pathname) : url;
  return path.replace(/^node_modules\//, "");
}

export function topSelf(
  profile: Profile,
  top: number,
  fromS = 0,
  toS = Number.POSITIVE_INFINITY,
): { fn: string; ms: number; share: number }[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  let at = 0;
  profile.samples.forEach((id, i) => {
    const n = byId.get(id);
    const us = profile.timeDeltas[i] ?? 0;
    at += us;
    if (at < fromS * 1e6 || at > toS * 1e6) return;
    total += us;
    if (!n) return;
    const f = n.callFrame;
    const key = `${f.functionName || "(anonymous)"} ${f.url ? `${where(f.url)}:${f.lineNumber + 1}` : ""}`.trim();
    self.set(key, (self.get(key) ?? 0) + us);
  });
  return [...self]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([fn, us]) => ({ fn, ms: us / 1000, share: total ? us / total : 0 }));
}

if (process.argv[1] === import.meta.filename) {
  const argv = process.argv.slice(2);
  const files = argv.filter((a, i) => !a.startsWith("--") && !argv[i - 1]?.startsWith("--"));
  const option = (name: string, fallback: number): number => (argv.includes(name) ? Number(argv[argv.indexOf(name) + 1]) : fallback);
  const top = option("--top", 25);
  const from = option("--from", 0);
  const to = option("--to", Number.POSITIVE_INFINITY);
  for (const file of files) {
    const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
    process.stdout.write(`${file}\n`);
    for (const r of topSelf(profile, top, from, to))
      process.stdout.write(`  ${(100 * r.share).toFixed(1).padStart(5)}%  ${r.ms.toFixed(0).padStart(7)} ms  ${r.fn}\n`);
  }
}
