/** PostgreSQL helpers: one pool per service, transactions, and versioned SQL migrations. */
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { MIGRATION_LOCK } from "./advisory-locks.ts";

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;
export type Queryable = Pick<pg.Pool, "query">;

// bigint columns (revisions, offsets, seq) come back as JS numbers; values stay below 2^53.
pg.types.setTypeParser(20, (v: string) => Number(v));

export function createPool(databaseUrl: string, options: { max?: number; applicationName?: string } = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: options.max ?? 5,
    application_name: options.applicationName ?? "hashrelay",
    // The rounds' set-based statements are planned for arrays of unknown length, so their cost
    // estimates pass jit_above_cost while each run touches a few index rows: compiling them took
    // far longer than running them, on every execution.
    options: "-c jit=off",
  });
  // An idle connection dropped by the server (restart, failover) must not crash the process:
  // the pool discards it and the next query opens a fresh one, or fails visibly there.
  pool.on("error", () => undefined);
  // A client checked out and idle between queries (the outbox relay holds one) gets the same
  // error with no pool listener attached; unhandled, it would crash the process. The client's
  // next query then fails with "not queryable", which its owner handles and retries.
  pool.on("connect", (client) => client.on("error", () => undefined));
  return pool;
}

/** Runs `work` in one transaction; rolls back on any error so no half-applied state remains. */
export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    const result = await work(client);
    await client.query("COMMIT");
    return result;
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

let cursors = 0;

/**
 * Reads a query's rows in pages of at most `pageRows` through a cursor in the caller's open
 * transaction, so a result of any size is never in memory whole; the rows are those of the
 * snapshot the cursor was opened in. The cursor is closed when the caller stops iterating.
 */
export async function* cursorPages<T extends pg.QueryResultRow>(
  tx: pg.PoolClient,
  sql: string,
  params: readonly unknown[],
  pageRows: number,
): AsyncGenerator<T[]> {
  const name = `hashrelay_cursor_${++cursors}`;
  await tx.query(`DECLARE ${name} NO SCROLL CURSOR FOR ${sql}`, [...params]);
  try {
    for (;;) {
      const { rows } = await tx.query<T>(`FETCH ${pageRows} FROM ${name}`);
      if (rows.length) yield rows;
      if (rows.length < pageRows) return;
    }
  } finally {
    // Fails only when the transaction is already aborted, which closes the cursor anyway.
    await tx.query(`CLOSE ${name}`).catch(() => undefined);
  }
}

export const SHARED_MIGRATIONS = fileURLToPath(new URL("./migrations/", import.meta.url));

/**
 * Applies NNN_name.sql files from each directory once, in order, recording them under a
 * namespace. A session advisory lock keeps several instances starting at once from racing.
 */
export async function migrate(pool: pg.Pool, sets: { namespace: string; dir: string }[]): Promise<string[]> {
  const applied: string[] = [];
  const client = await pool.connect();
  try {
    await client.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK]);
    await client.query(
      `CREATE TABLE IF NOT EXISTS schema_migrations (
         namespace text NOT NULL, version text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),
         PRIMARY KEY (namespace, version))`,
    );
    for (const { namespace, dir } of sets) {
      const done = new Set(
        (await client.query<{ version: string }>("SELECT version FROM schema_migrations WHERE namespace = $1", [namespace])).rows.map(
          (r) => r.version,
        ),
      );
      const files = readdirSync(dir)
        .filter((f) => /^\d{3}_.+\.sql$/.test(f))
        .sort();
      for (const file of files) {
        if (done.has(file)) continue;
        await client.query("BEGIN");
        try {
          await client.query(readFileSync(join(dir, file), "utf8"));
          await client.query("INSERT INTO schema_migrations (namespace, version) VALUES ($1, $2)", [namespace, file]);
          await client.query("COMMIT");
        } catch (err) {
          await client.query("ROLLBACK");
          throw new Error(`migration ${namespace}/${file} failed: ${(err as Error).message}`, { cause: err });
        }
        applied.push(`${namespace}/${file}`);
      }
    }
  } finally {
    await client.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK]).catch(() => undefined);
    client.release();
  }
  return applied;
}
