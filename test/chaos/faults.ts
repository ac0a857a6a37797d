/**
 * Carries out the chaos schedule (schedule.ts) against the run's own stack and service instances:
 * each fault fires at its time, stays for its downtime, and is then undone (the instance started,
 * the broker or PostgreSQL brought back with infra/stack.sh, the database resumed). Faults of one
 * lane never overlap: a fault whose lane is still busy waits, and the report says by how long.
 */
import pg from "pg";
import type { Fleet } from "./fleet.ts";
import type { FaultEvent } from "./schedule.ts";
import { describeEvent, laneOf } from "./schedule.ts";
import type { ChaosStack } from "./stack.ts";
import { adminClient } from "./stack.ts";

export interface FaultOutcome {
  readonly event: FaultEvent;
  /** ms after the start: when it fired (later than planned when its lane was busy) and when it was undone. */
  readonly firedAt: number;
  readonly undoneAt: number;
  /** What it hit, resolved when it fired ("node 2 (controller)", "dedup-1", "hotline-uk: 3 backends"). */
  readonly hit: string;
  readonly error?: string;
}

export interface FaultContext {
  readonly stack: ChaosStack;
  readonly fleet: Fleet;
  /** Topics whose partition leaders a "leader" broker fault picks from. */
  readonly leaderTopics: readonly string[];
  readonly partnerDbUrls: Record<string, string>;
  readonly admin: ReturnType<import("kafkajs").Kafka["admin"]>;
  readonly rnd: () => number;
  readonly log: (line: string) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs every event of the schedule; resolves with each one's outcome once the last is undone. */
export async function runFaults(c: FaultContext, events: readonly FaultEvent[], t0: number): Promise<FaultOutcome[]> {
  const lanes = new Map<string, Promise<void>>();
  const outcomes: FaultOutcome[] = [];
  const all = events.map((e) => {
    const lane = laneOf(e);
    // Lanes chain in schedule order: a fault waits until the one before it in its lane is undone.
    const before = lanes.get(lane) ?? Promise.resolve();
    const done = (async () => {
      await sleep(Math.max(0, t0 + e.at - Date.now()));
      await before;
      const firedAt = Date.now() - t0;
      let hit = e.target;
      let error: string | undefined;
      try {
        hit = await fire(c, e, firedAt);
      } catch (err) {
        error = (err as Error).message;
        c.log(`  ! ${describeEvent(e)}: ${error}`);
      }
      outcomes.push({ event: e, firedAt, undoneAt: Date.now() - t0, hit, ...(error ? { error } : {}) });
    })();
    lanes.set(lane, done);
    return done;
  });
  await Promise.all(all);
  return outcomes.sort((a, b) => a.firedAt - b.firedAt);
}

async function fire(c: FaultContext, e: FaultEvent, firedAt: number): Promise<string> {
  const at = `${(firedAt / 1000).toFixed(1)} s`;
  switch (e.kind) {
    case "kill-service": {
      // The other instance of a pair may be down already: then both are, for a while.
      await c.fleet.stop(e.target, "SIGKILL");
      c.log(`  ${at}: killed ${e.target} (kill -9)`);
      await sleep(e.downMs);
      c.fleet.start(e.target);
      return e.target;
    }
    case "broker": {
      const node = await c.stack.resolveBroker(e.target as "controller" | "leader" | "any", c.admin, c.leaderTopics, c.rnd);
      await c.stack.signalBroker(node, e.mode === "kill" ? "SIGKILL" : "SIGTERM");
      c.log(`  ${at}: ${e.mode === "kill" ? "killed" : "stopped"} broker ${node} (${e.target})`);
      await sleep(e.downMs);
      const t = Date.now();
      await c.stack.up(["kafka"]);
      c.log(`  broker ${node} back after ${((Date.now() - t) / 1000).toFixed(0)} s of start-up`);
      return `node ${node} (${e.target})`;
    }
    case "pg-restart": {
      await c.stack.stopPostgres(e.mode as "immediate" | "fast");
      c.log(`  ${at}: stopped the hub PostgreSQL (${e.mode})`);
      await sleep(e.downMs);
      await c.stack.up(["pg"]);
      c.log("  PostgreSQL back");
      return `PostgreSQL (${e.mode})`;
    }
    case "partner-db-pause":
      return e.mode === "lock" ? lockPartner(c, e, at) : stopBackends(c, e, at);
  }
}

/**
 * Takes the sink's tables with exclusive locks, so every round waits until they are released. The
 * locks are taken in the order a round takes its own (offsets first), so the two wait for each other
 * rather than deadlock; a deadlock with something else is tried again.
 */
async function lockPartner(c: FaultContext, e: FaultEvent, at: string): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    const client = new pg.Client({ connectionString: c.partnerDbUrls[e.target] as string, application_name: "hashrelay-chaos" });
    await client.connect();
    try {
      await client.query("BEGIN");
      await client.query("SET LOCAL lock_timeout = '60s'");
      for (const table of ["consumer_offsets", "feed_state", "partner_hashes", "feed_applied"]) {
        await client.query(`LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`);
      }
      c.log(`  ${at}: ${e.target}'s tables locked`);
      await sleep(e.downMs);
      await client.query("ROLLBACK");
      return `${e.target} (table locks${attempt > 1 ? `, attempt ${attempt}` : ""})`;
    } catch (err) {
      if ((err as { code?: string }).code !== "40P01" || attempt >= 3) throw err;
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}

/** Freezes the partner database's backends (SIGSTOP), as a stalled disk or VM would, then resumes them. */
async function stopBackends(c: FaultContext, e: FaultEvent, at: string): Promise<string> {
  const db = new URL(c.partnerDbUrls[e.target] as string).pathname.slice(1);
  const root = await adminClient(c.stack.env["DATABASE_URL"] as string);
  let pids: number[];
  try {
    const { rows } = await root.query<{ pid: number }>(
      "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
      [db],
    );
    pids = rows.map((r) => r.pid);
  } finally {
    await root.end();
  }
  const stopped: number[] = [];
  try {
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGSTOP");
        stopped.push(pid);
      } catch {
        /* gone meanwhile */
      }
    }
    c.log(`  ${at}: ${e.target}'s ${stopped.length} backends stopped (SIGSTOP)`);
    await sleep(e.downMs);
  } finally {
    for (const pid of stopped) {
      try {
        process.kill(pid, "SIGCONT");
      } catch {
        /* gone */
      }
    }
  }
  return `${e.target} (${stopped.length} backends)`;
}
