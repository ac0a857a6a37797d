/**
 * What a consumer round's PostgreSQL round trips cost at a trickle, with nothing else running: the
 * exactly-once step's shape (shared/exactly-once-step.ts: BEGIN with the apply lock and the offset
 * row lock, a prepared read of the round's rows, a prepared write that returns ids, the offsets
 * stored with COMMIT) sent three ways, one round every --interval-ms on one connection:
 *   - sequential: four round trips, each awaited (what dedup and distribution do);
 *   - pipelined: the same four statements on a connection in node-postgres's pipeline mode, the
 *     read sent behind the BEGIN and the COMMIT behind the write, so two waits;
 *   - two trips: the read after the lock in the first simple query and the write with the offsets
 *     and COMMIT in the second, values written as literals (no prepared statements).
 * It prints this process's CPU and the server backend's CPU per round for each, so that a change
 * to how rounds talk to PostgreSQL can be judged before it is built. Temporary tables only.
 *
 *   node bench/pg-round-trips.ts [--rounds 150] [--interval-ms 150]
 *
 * Writes bench-results/pg-round-trips.json.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import pg from "pg";
import { REPO_ROOT } from "../services/shared/config.ts";
import { stackEnv } from "../test/support/stack.ts";
import { cpuUsageMs, procCpuMs } from "./pipeline/proc.ts";
import { positiveIntegerArgs } from "./pipeline/util.ts";

type Shape = "sequential" | "pipelined" | "two trips";
const SHAPES: readonly Shape[] = ["sequential", "pipelined", "two trips"];

interface Args {
  rounds: number;
  intervalMs: number;
}

const BEGIN = "BEGIN; SELECT pg_advisory_xact_lock(424242); SELECT next_offset FROM rt_offsets WHERE partition = 0 FOR UPDATE";
const READ = { name: "rt.read", text: "SELECT id, body FROM rt_rows WHERE id = ANY($1::bigint[])" };
const WRITE = { name: "rt.write", text: "INSERT INTO rt_rows (body) SELECT unnest($1::bytea[]) RETURNING id" };
const commit = (next: number) => `UPDATE rt_offsets SET next_offset = ${next} WHERE partition = 0; COMMIT`;

/** One round of three synthetic rows, in the given shape. */
async function round(client: pg.Client, shape: Shape, next: number): Promise<void> {
  const bodies = [0, 1, 2].map((i) => Buffer.from(`synthetic ${next} ${i}`));
  if (shape === "sequential") {
    await client.query(BEGIN);
    await client.query({ ...READ, values: [[1, 2, 3]] });
    await client.query({ ...WRITE, values: [bodies] });
    await client.query(commit(next));
  } else if (shape === "pipelined") {
    await Promise.all([client.query(BEGIN), client.query({ ...READ, values: [[1, 2, 3]] })]);
    await Promise.all([client.query({ ...WRITE, values: [bodies] }), client.query(commit(next))]);
  } else {
    await client.query(`${BEGIN}; SELECT id, body FROM rt_rows WHERE id = ANY('{1,2,3}'::bigint[])`);
    const literal = bodies.map((b) => `\\\\x${b.toString("hex")}`).join(",");
    await client.query(`INSERT INTO rt_rows (body) SELECT unnest('{${literal}}'::bytea[]) RETURNING id; ${commit(next)}`);
  }
}

async function measure(shape: Shape, args: Args): Promise<{ shape: Shape; clientMsPerRound: number; backendMsPerRound: number }> {
  const client = new pg.Client({ connectionString: stackEnv().databaseUrl, pipeline: shape === "pipelined", options: "-c jit=off" });
  await client.connect();
  try {
    await client.query(
      "CREATE TEMP TABLE rt_offsets (partition int PRIMARY KEY, next_offset bigint); INSERT INTO rt_offsets VALUES (0, 0); " +
        "CREATE TEMP TABLE rt_rows (id bigserial PRIMARY KEY, body bytea)",
    );
    const { rows } = await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
    const backend = rows[0]?.pid as number;
    for (let i = 1; i <= 20; i++) await round(client, shape, i); // warm up: plans cached, code compiled
    const b0 = procCpuMs(backend);
    const c0 = process.cpuUsage();
    for (let i = 1; i <= args.rounds; i++) {
      await round(client, shape, 20 + i);
      await new Promise((r) => setTimeout(r, args.intervalMs));
    }
    const c = process.cpuUsage(c0);
    return {
      shape,
      clientMsPerRound: cpuUsageMs(c) / args.rounds,
      backendMsPerRound: (procCpuMs(backend) - b0) / args.rounds,
    };
  } finally {
    await client.end();
  }
}

async function main(): Promise<void> {
  const args = positiveIntegerArgs("bench/pg-round-trips.ts", process.argv.slice(2), { rounds: 150, intervalMs: 150 });
  const results = [];
  for (const shape of SHAPES) results.push(await measure(shape, args));
  const base = results[0] as (typeof results)[number];
  for (const r of results) {
    process.stdout.write(
      `${r.shape.padEnd(10)}  client ${r.clientMsPerRound.toFixed(3)} ms CPU per round (${(r.clientMsPerRound / base.clientMsPerRound).toFixed(2)}× sequential), ` +
        `backend ${r.backendMsPerRound.toFixed(3)} (${(r.backendMsPerRound / base.backendMsPerRound).toFixed(2)}×)\n`,
    );
  }
  process.stdout.write(`${args.rounds} rounds each, one every ${args.intervalMs} ms; the backend's figure is in 10 ms clock ticks\n`);
  mkdirSync(`${REPO_ROOT}bench-results`, { recursive: true });
  writeFileSync(
    `${REPO_ROOT}bench-results/pg-round-trips.json`,
    `${JSON.stringify({ ...args, results, at: new Date().toISOString() }, null, 2)}\n`,
  );
}

await main();
