/**
 * Batch sizes per pipeline stage, read back from the services' JSON log lines: each service logs one
 * line per applied batch, so the count, size and spacing of batches come from what ran.
 */
import { existsSync, readFileSync } from "node:fs";
import { percentile } from "./util.ts";

export interface LogLine {
  time: number;
  level: number;
  msg: string;
  fields: Record<string, unknown>;
}

export function readLogLines(file: string): LogLine[] {
  if (!existsSync(file)) return [];
  const out: LogLine[] = [];
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const j = JSON.parse(line) as Record<string, unknown>;
      out.push({ time: Date.parse(String(j["time"])), level: Number(j["level"] ?? 0), msg: String(j["msg"] ?? ""), fields: j });
    } catch {
      /* not a log line */
    }
  }
  return out;
}

export const BATCH_LOGS: Record<string, { msg: string; field: string }> = {
  dedup: { msg: "batch applied", field: "applied" },
  distribution: { msg: "canonical batch distributed", field: "records" },
  "partner-sink": { msg: "feed batch applied", field: "applied" },
};

export interface BatchStats {
  batches: number;
  items: number;
  perBatch: number;
  maxPerBatch: number;
  batchesPerSecond: number;
  /** Median time between one batch's log line and the next: the time per batch while there is a backlog. */
  medianGapMs: number;
}

export function batchStats(lines: LogLine[], service: string, from: number, to: number): BatchStats | null {
  const spec = BATCH_LOGS[service];
  if (!spec) return null;
  const sel = lines.filter((l) => l.msg === spec.msg && l.time >= from && l.time <= to);
  const sizes = sel.map((l) => Number(l.fields[spec.field] ?? 0));
  const items = sizes.reduce((a, b) => a + b, 0);
  const times = sel.map((l) => l.time).sort((a, b) => a - b);
  const gaps = times
    .slice(1)
    .map((x, i) => x - (times[i] as number))
    .sort((a, b) => a - b);
  return {
    medianGapMs: percentile(gaps, 50),
    batches: sel.length,
    items,
    perBatch: sel.length ? items / sel.length : 0,
    maxPerBatch: sizes.length ? Math.max(...sizes) : 0,
    batchesPerSecond: sel.length / Math.max(0.001, (to - from) / 1000),
  };
}
