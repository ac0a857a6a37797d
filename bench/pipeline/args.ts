/**
 * The pipeline benchmark's command line: how many submissions for throughput, the rate, length
 * and tick of the steady latency phase, an optional idle measurement and an optional profile of
 * the services. Every value is a positive number (--idle-seconds may be 0: no idle phase);
 * --profile takes none; --help prints the usage. --import (no value) runs the S3 import mode
 * instead (import.ts): --count submissions, 1,000,000 unless given, and no steady phase, so the
 * steady phase's flags are refused beside it.
 */

export interface Args {
  count: number;
  rate: number;
  seconds: number;
  tickMs: number;
  /** Seconds of CPU measured with no traffic, a minute after the services started; 0: none. */
  idleSeconds: number;
  /** Services run with the V8 CPU profiler and a count of their SQL statements (bench-results/profiles/). */
  profile: boolean;
  /** The S3 import mode: --count submissions through one bulk import, no raw baseline or steady phase. */
  import: boolean;
}

export const USAGE =
  "usage: node bench/pipeline.ts [--count 10000] [--rate 200] [--seconds 30] [--tick-ms 50] [--idle-seconds 0] [--profile]\n" +
  "       node bench/pipeline.ts --import [--count 1000000] [--profile]";

/** Submissions of the import mode when --count is not given. */
export const IMPORT_COUNT = 1_000_000;

const STEADY_FLAGS = ["--rate", "--seconds", "--tick-ms", "--idle-seconds"];

export function parseArgs(argv: string[]): Args {
  const args: Args = { count: 10_000, rate: 200, seconds: 30, tickMs: 50, idleSeconds: 0, profile: false, import: false };
  const given = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (flag === "--help" || flag === "-h") {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    }
    if (flag === "--profile" || flag === "--import") {
      args[flag === "--profile" ? "profile" : "import"] = true;
      continue;
    }
    given.add(flag ?? "");
    if (value === undefined) throw new Error(`${flag} needs a value; ${USAGE}`);
    const n = Number(value.replace(/_/g, ""));
    if (flag === "--idle-seconds" && n === 0) {
      args.idleSeconds = 0;
      i++;
      continue;
    }
    if (!Number.isFinite(n) || n <= 0) throw new Error(`${flag}: not a positive number: ${value}`);
    if (flag === "--count") args.count = Math.round(n);
    else if (flag === "--rate") args.rate = n;
    else if (flag === "--seconds") args.seconds = n;
    else if (flag === "--idle-seconds") args.idleSeconds = n;
    else if (flag === "--tick-ms") args.tickMs = Math.max(1, Math.round(n));
    else throw new Error(`unknown argument ${flag}; ${USAGE}`);
    i++;
  }
  if (args.import) {
    const steady = STEADY_FLAGS.filter((f) => given.has(f));
    if (steady.length) throw new Error(`${steady.join(", ")}: the import mode has no steady phase; ${USAGE}`);
    if (!given.has("--count")) args.count = IMPORT_COUNT;
  }
  return args;
}
