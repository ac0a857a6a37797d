/**
 * The services' pool: its session settings, and a server-side disconnect (restart, failover, an operator's pg_terminate_backend) must reach
 * the code that holds the connection as a query error, never as an uncaught exception that
 * kills the service: the outbox relay keeps one client checked out between queries.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPool } from "../../services/shared/postgres.ts";
import { freshDatabase, stackEnv } from "../support/stack.ts";
import type { TestDatabase } from "../support/stack.ts";
import { waitFor } from "../support/processes.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase("pgresilience");
});
afterAll(async () => {
  await db.drop();
});

describe("PostgreSQL connection loss", () => {
  it("a checked-out idle client terminated by the server fails its next query instead of crashing", async () => {
    const uncaught: unknown[] = [];
    const record = (err: unknown): void => void uncaught.push(err);
    process.on("uncaughtException", record);
    const pool = createPool(db.url, { max: 2, applicationName: "pg-resilience" });
    try {
      const client = await pool.connect();
      const { rows } = await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
      const admin = new pg.Client({ connectionString: stackEnv().databaseUrl });
      await admin.connect();
      await admin.query("SELECT pg_terminate_backend($1)", [rows[0]?.pid]);
      await admin.end();
      // The server's FATAL message and the socket close arrive while the client sits idle.
      await waitFor(
        "the client to see the disconnect",
        async () => {
          try {
            await client.query("SELECT 1");
            return false;
          } catch (err) {
            expect(String(err)).toMatch(/terminat|not queryable|Connection/i);
            return true;
          }
        },
        10_000,
      );
      client.release(true);
      // The pool replaces the lost connection.
      const again = await pool.query<{ one: number }>("SELECT 1 AS one");
      expect(again.rows[0]?.one).toBe(1);
      expect(uncaught).toEqual([]);
    } finally {
      process.off("uncaughtException", record);
      await pool.end();
    }
  });
});

describe("the services' pool", () => {
  it("opens sessions with JIT compilation off", async () => {
    const pool = createPool(db.url, { max: 1, applicationName: "pg-settings" });
    try {
      const { rows } = await pool.query<{ jit: string }>("SHOW jit");
      expect(rows[0]?.jit).toBe("off");
      // The server's own default is what the pool overrides (on, unless an operator turned it off).
      const plain = new pg.Client({ connectionString: db.url });
      await plain.connect();
      const server = await plain.query<{ jit: string }>("SHOW jit");
      await plain.end();
      expect(server.rows[0]?.jit).toBe("on");
    } finally {
      await pool.end();
    }
  });
});
