/** Command-line options of the chaos run (test/chaos/chaos.ts), with their defaults. */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { REPO_ROOT } from "../../services/shared/config.ts";

export interface ChaosArgs {
  readonly minutes: number;
  readonly seed: number;
  /** full: the fault schedule at its rates; short: one broker kill and one kill of each service; none: the soak. */
  readonly profile: "full" | "short" | "none";
  /** Submissions a second over HTTP (S3 imports come on top). */
  readonly rate: number;
  /** Instances of each consumer service (dedup, distribution, each partner's sink). */
  readonly instances: number;
  readonly brokers: 1 | 3;
  readonly stackDir: string;
  /** The stack's ports are counted from it (stackPorts). */
  readonly portBase: number;
  /** Use the local stack's PostgreSQL and S3 (.stack/env) instead of starting them: no PostgreSQL restarts then. */
  readonly sharedPostgres: boolean;
  /** Leave the stack running and the run's databases and topics in place. */
  readonly keep: boolean;
  readonly resultsDir: string;
}

const USAGE = `usage: node test/chaos/chaos.ts [--minutes 10] [--seed N] [--soak | --short] [--rate 6] [--instances 2]
       [--brokers 3] [--stack-dir .chaos/stack] [--port-base 17090] [--shared-postgres] [--keep] [--results bench-results]`;

export function parseChaosArgs(argv: readonly string[]): ChaosArgs {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      minutes: { type: "string", default: "10" },
      seed: { type: "string" },
      soak: { type: "boolean", default: false },
      short: { type: "boolean", default: false },
      rate: { type: "string", default: "6" },
      instances: { type: "string", default: "2" },
      brokers: { type: "string", default: "3" },
      // Beside .stack, not in it: infra/stack.sh finds a stack's processes by its folder in their command lines.
      "stack-dir": { type: "string", default: join(REPO_ROOT, ".chaos", "stack") },
      "port-base": { type: "string", default: "17090" },
      "shared-postgres": { type: "boolean", default: false },
      keep: { type: "boolean", default: false },
      results: { type: "string", default: join(REPO_ROOT, "bench-results") },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const number = (name: string, v: string, min: number) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number >= ${min}, not ${JSON.stringify(v)}\n${USAGE}`);
    return n;
  };
  if (values.soak && values.short) throw new Error(`--soak and --short exclude each other\n${USAGE}`);
  const brokers = number("brokers", values.brokers, 1);
  if (brokers !== 1 && brokers !== 3) throw new Error(`--brokers must be 1 or 3\n${USAGE}`);
  return {
    minutes: number("minutes", values.minutes, 0.5),
    seed: values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : number("seed", values.seed, 0),
    profile: values.soak ? "none" : values.short ? "short" : "full",
    rate: number("rate", values.rate, 1),
    instances: number("instances", values.instances, 1),
    brokers,
    stackDir: values["stack-dir"],
    portBase: number("port-base", values["port-base"], 1024),
    sharedPostgres: values["shared-postgres"],
    keep: values.keep,
    resultsDir: values.results,
  };
}

/**
 * The stack's ports from one base: Kafka clients base+2, +4, +6 (controllers +3, +5, +7), PostgreSQL
 * base+10, S3 base+11. Bases stay below the kernel's ephemeral range (32768 up on Linux), where any
 * outgoing connection may hold the port when a broker starts, and clear of the ports tests pick at
 * random (20000 up).
 */
export function stackPorts(base: number): { kafka: number; controller: number; pg: number; s3: number } {
  return { kafka: base + 2, controller: base + 3, pg: base + 10, s3: base + 11 };
}
