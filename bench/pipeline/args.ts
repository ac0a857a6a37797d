/**
 * The pipeline benchmark's command line: how many submissions for throughput, the rate, length
 * and tick of the steady latency phase, an optional idle measurement and an optional profile of
 * the services. Every value is a positive number (--idle-seconds may be 0: no idle phase);
 * --profile takes none; --help prints the usage.
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
}

export const USAGE =
  "usage: node bench/pipeline.ts [--count 10000] [--rate 200] [--seconds 30] [--tick-ms 50] [--idle-seconds 0] [--profile]";

export function parseArgs(argv: string[]): Args {
  const args: Args = { count: 10_000, rate: 200, seconds: 30, tickMs: 50, idleSeconds: 0, profile: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (flag === "--help" || flag === "-h") {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    }
    if (flag === "--profile") {
      args.profile = true;
      continue;
    }
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
  return args;
}
