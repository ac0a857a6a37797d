/**
 * Small helpers of the pipeline benchmark: progress log on stderr (seconds since start), number
 * formatting, nearest-rank percentiles, plain-text tables, a free port and a polling wait; and the
 * argument parser of the small single-purpose benchmarks beside it.
 * Percentiles are nearest-rank over the sorted values, so every figure is one measured value.
 */
import { createServer } from "node:net";

const T0 = Date.now();
export const log = (s: string): void => void process.stderr.write(`[${((Date.now() - T0) / 1000).toFixed(1).padStart(5)} s] ${s}\n`);
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
export const fmt = (n: number, digits = 0): string =>
  Number.isFinite(n) ? n.toLocaleString("en-GB", { minimumFractionDigits: digits, maximumFractionDigits: digits }) : "-";

export interface Summary {
  n: number;
  mean: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  min: number;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

export function summarize(values: readonly number[]): Summary {
  const s = [...values].sort((a, b) => a - b);
  return {
    n: s.length,
    mean: s.length ? s.reduce((a, b) => a + b, 0) / s.length : NaN,
    p50: percentile(s, 50),
    p95: percentile(s, 95),
    p99: percentile(s, 99),
    max: s.length ? (s[s.length - 1] as number) : NaN,
    min: s.length ? (s[0] as number) : NaN,
  };
}

export function table(header: string[], rows: string[][]): string {
  const cells = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...cells.map((r) => (r[c] ?? "").length)));
  const line = (r: string[]) =>
    r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c] as number) : cell.padStart(widths[c] as number))).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export async function waitUntil(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs: number,
  everyMs = 200,
  onTimeout?: () => Promise<string>,
): Promise<number> {
  const start = Date.now();
  let last: unknown;
  for (;;) {
    try {
      if (await probe()) return Date.now();
    } catch (err) {
      last = err;
    }
    if (Date.now() - start > timeoutMs) {
      const extra = onTimeout ? `\n${await onTimeout().catch((e: unknown) => `(diagnosis failed: ${(e as Error).message})`)}` : "";
      throw new Error(
        `timed out after ${(timeoutMs / 1000).toFixed(0)} s waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ""}${extra}`,
      );
    }
    await sleep(everyMs);
  }
}

/**
 * The arguments of a small benchmark that takes only counts: `--flag n` pairs over the defaults,
 * each a positive integer, the field `intervalMs` being the flag `--interval-ms`. An unknown flag
 * or a value that is not a positive integer is refused with the script's usage line.
 */
export function positiveIntegerArgs<A extends Record<string, number>>(script: string, argv: readonly string[], defaults: A): A {
  const flagOf = (field: string) => `--${field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  const fieldOf = new Map(Object.keys(defaults).map((field) => [flagOf(field), field]));
  const usage = `usage: node ${script} ${Object.entries(defaults)
    .map(([field, n]) => `[${flagOf(field)} ${n}]`)
    .join(" ")}`;
  const args: Record<string, number> = { ...defaults };
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i] ?? "";
    const field = fieldOf.get(flag);
    if (field === undefined) throw new Error(`unknown argument ${flag}; ${usage}`);
    const n = Number(argv[i + 1]);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`${flag} needs a positive integer; ${usage}`);
    args[field] = n;
  }
  return args as A;
}
