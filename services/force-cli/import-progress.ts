/**
 * The force CLI's view of an S3 import while the hub runs it: from each polled job (counts, lines
 * and bytes read, the object's size, start and last-update times) it works out the rate and the
 * time left, and shows them as a progress bar on a terminal, or as a plain line at most every few
 * seconds when the output is a log file or a pipe.
 *
 * Invariant: the rate and the time left come from the job alone, on the hub's clock, so neither
 * the CLI's clock nor the polling rhythm skews them; a hub that sends no progress fields gives
 * "-" rather than a guess.
 */
import { SingleBar } from "cli-progress";
import type { ImportJob } from "../shared/wire/ingest-api.ts";

export interface ImportFigures {
  readonly read: number;
  readonly accepted: number;
  readonly duplicates: number;
  readonly refused: number;
  /** Lines read per second of the run so far; null before the first chunk. */
  readonly ratePerSecond: number | null;
  /** From the bytes still to read at the run's pace so far; null when unknown. */
  readonly secondsLeft: number | null;
  /** Bytes read over the object's size, 0 to 1; null when the size is unknown. */
  readonly fraction: number | null;
}

export function importFigures(job: ImportJob): ImportFigures {
  const read = job.linesRead ?? 0;
  const bytesRead = job.bytesRead ?? 0;
  const total = job.totalBytes ?? null;
  const started = job.startedAt ? Date.parse(job.startedAt) : Number.NaN;
  const updated = job.updatedAt ? Date.parse(job.updatedAt) : Number.NaN;
  const elapsed = (updated - started) / 1000;
  const timed = Number.isFinite(elapsed) && elapsed > 0;
  const finished = job.status === "done";
  return {
    read,
    accepted: job.receipt.accepted,
    duplicates: job.receipt.duplicates,
    refused: job.receipt.rejected,
    ratePerSecond: timed && read > 0 ? read / elapsed : null,
    secondsLeft: finished ? 0 : timed && total !== null && bytesRead > 0 ? (Math.max(total - bytesRead, 0) * elapsed) / bytesRead : null,
    fraction: total === null ? null : total === 0 ? 1 : Math.min(bytesRead / total, 1),
  };
}

const count = new Intl.NumberFormat("en-GB", { maximumFractionDigits: 0 });

/** "2h 05m", "4m 07s", "9s"; "-" when unknown. */
export function formatDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return "-";
  const s = Math.round(seconds);
  const pad = (n: number) => String(n).padStart(2, "0");
  if (s >= 3600) return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  return `${s}s`;
}

function payload(f: ImportFigures) {
  return {
    read: count.format(f.read),
    accepted: count.format(f.accepted),
    duplicates: count.format(f.duplicates),
    refused: count.format(f.refused),
    rate: f.ratePerSecond === null ? "-" : count.format(f.ratePerSecond),
    left: formatDuration(f.secondsLeft),
  };
}

/** One line for a log: the job's state, then the figures once the hub has started reading. */
export function progressLine(job: ImportJob): string {
  if (job.status === "queued") return `import ${job.importId} queued: waiting for the hub to start it`;
  const f = importFigures(job);
  const p = payload(f);
  const percent = f.fraction === null ? "" : ` ${Math.floor(f.fraction * 100)}% |`;
  return (
    `import ${job.importId} ${job.status}:${percent} read ${p.read} | accepted ${p.accepted} | duplicates ${p.duplicates}` +
    ` | refused ${p.refused} | ${p.rate} items/s | ${p.left} left`
  );
}

export interface ImportProgressOptions {
  /** A bar redrawn in place (a terminal) or plain lines through `log` (a file or a pipe). */
  readonly interactive: boolean;
  readonly log: (text: string) => void;
  /** Shortest time between two plain lines. */
  readonly everyMs?: number;
  readonly now?: () => number;
}

/** Feed it each polled job (`update`); `stop` before printing the receipt. */
export function importProgress(o: ImportProgressOptions): { update: (job: ImportJob) => void; stop: () => void } {
  const now = o.now ?? Date.now;
  const everyMs = o.everyMs ?? 5000;
  let lastLine = Number.NEGATIVE_INFINITY;
  let bar: SingleBar | undefined;
  return {
    update(job) {
      if (job.status === "done" || job.status === "failed") return;
      if (!o.interactive) {
        if (now() - lastLine < everyMs) return;
        lastLine = now();
        o.log(progressLine(job));
        return;
      }
      if (job.status !== "running") return;
      const f = importFigures(job);
      const total = job.totalBytes ?? 0;
      if (!bar) {
        bar = new SingleBar({
          format: " import {bar} {percentage}% | read {read} | accepted {accepted} | refused {refused} | {rate} items/s | {left} left",
          hideCursor: true,
          stream: process.stderr,
          noTTYOutput: false,
        });
        bar.start(total, 0, payload(f));
      }
      bar.update(Math.min(job.bytesRead ?? 0, total), payload(f));
    },
    stop() {
      bar?.stop();
    },
  };
}
