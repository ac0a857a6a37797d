/**
 * What a batch's array parameters cost both ends, sent as node-postgres's text literals and in
 * PostgreSQL's binary form (services/shared/pg-arrays.ts): one statement shaped like a round's
 * write, `INSERT ... SELECT FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[],
 * $5::jsonb[], $6::bytea[])`, with --rows rows of synthetic values (random ids, 64-hex digests, a
 * 400-byte encoded record), rolled back each time so the table stays empty. The two forms take
 * turns in blocks of ten statements on one connection (so --statements is a multiple of 20); it prints this process's and the server
 * backend's CPU per statement for each. Temporary tables only.
 *
 *   node bench/pg-arrays.ts [--rows 700] [--statements 200]
 *
 * Writes bench-results/pg-arrays.json.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import pg from "pg";
import { REPO_ROOT } from "../services/shared/config.ts";
import { bound } from "../services/shared/pg-arrays.ts";
import { stackEnv } from "../test/support/stack.ts";
import { cpuUsageMs, procCpuMs } from "./pipeline/proc.ts";
import { positiveIntegerArgs } from "./pipeline/util.ts";

const INSERT = `INSERT INTO pa_rows (id, rev, alg, value, meta, body)
  SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::jsonb[], $6::bytea[])`;

type Form = "text literals" | "binary";

function columns(rows: number): unknown[][] {
  const n = Array.from({ length: rows }, (_, i) => i);
  return [
    n.map(() => randomUUID()),
    n.map((i) => 1_700_000_000_000 + i),
    n.map(() => "sha256"),
    n.map(() => randomBytes(32).toString("hex")),
    n.map((i) => JSON.stringify({ caseRef: `synthetic-${i}`, series: null })),
    n.map(() => randomBytes(400)),
  ];
}

async function main(): Promise<void> {
  const args = positiveIntegerArgs("bench/pg-arrays.ts", process.argv.slice(2), { rows: 700, statements: 200 });
  // Each form gets every other block of ten: fewer, or a remainder, would leave one form short or unmeasured.
  if (args.statements % 20 !== 0)
    throw new Error(`--statements ${args.statements}: give a multiple of 20 (blocks of ten, the two forms in turn)`);
  const client = new pg.Client({ connectionString: stackEnv().databaseUrl, options: "-c jit=off" });
  await client.connect();
  const spent: Record<Form, { client: number; backend: number; n: number }> = {
    "text literals": { client: 0, backend: 0, n: 0 },
    binary: { client: 0, backend: 0, n: 0 },
  };
  try {
    await client.query("CREATE TEMP TABLE pa_rows (id uuid, rev bigint, alg text, value text, meta jsonb, body bytea)");
    const backend = (await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]?.pid as number;
    const values = columns(args.rows);
    const run = async (form: Form) => {
      // The values are built outside the timed part: only what each form adds is measured.
      await client.query("BEGIN");
      await client.query(form === "binary" ? bound(INSERT, values) : { text: INSERT, values });
      await client.query("ROLLBACK");
    };
    for (let i = 0; i < 20; i++) await run(i % 2 ? "binary" : "text literals"); // warm up
    for (let block = 0; block < args.statements / 10; block++) {
      const form: Form = block % 2 ? "binary" : "text literals";
      const b0 = procCpuMs(backend);
      const c0 = process.cpuUsage();
      for (let i = 0; i < 10; i++) await run(form);
      const c = process.cpuUsage(c0);
      spent[form].client += cpuUsageMs(c);
      spent[form].backend += procCpuMs(backend) - b0;
      spent[form].n += 10;
    }
  } finally {
    await client.end();
  }
  const results = (Object.keys(spent) as Form[]).map((form) => ({
    form,
    clientMs: spent[form].client / spent[form].n,
    backendMs: spent[form].backend / spent[form].n,
  }));
  const base = results[0] as (typeof results)[number];
  for (const r of results) {
    process.stdout.write(
      `${r.form.padEnd(13)}  client ${r.clientMs.toFixed(3)} ms CPU per statement (${(r.clientMs / base.clientMs).toFixed(2)}×), ` +
        `backend ${r.backendMs.toFixed(3)} (${(r.backendMs / base.backendMs).toFixed(2)}×)\n`,
    );
  }
  process.stdout.write(
    `${args.rows} rows per statement (with BEGIN and ROLLBACK), ${args.statements} statements in blocks of ten; the backend's figure is in 10 ms clock ticks\n`,
  );
  mkdirSync(`${REPO_ROOT}bench-results`, { recursive: true });
  writeFileSync(
    `${REPO_ROOT}bench-results/pg-arrays.json`,
    `${JSON.stringify({ ...args, results, at: new Date().toISOString() }, null, 2)}\n`,
  );
}

await main();
