/**
 * The chaos run's short version (test/chaos/chaos.ts --short), in the fault pass of `make test`:
 * two minutes of the steady signed stream against three Kafka brokers of its own (started here in
 * .chaos/short on ports of their own, stopped afterwards), with one kill -9 of the active
 * controller, one kill -9 of an instance of each service (ingest, dedup, distribution, each partner's
 * sink, every consumer service running two instances) and one partner database locked for a while;
 * then the reconciliation must find no difference.
 *
 * PostgreSQL and S3 are the local stack's own (from .stack/env): the test only creates databases and
 * objects there, and never restarts or pauses the server, which other test files share. The full
 * run (`make chaos`) restarts a PostgreSQL of its own as well.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../services/shared/config.ts";
import { runChaos } from "../chaos/chaos.ts";
import type { ChaosResult } from "../chaos/chaos.ts";

describe("short chaos run", () => {
  it("loses nothing through a controller kill and a kill of each service, on three brokers", async (ctx) => {
    const lines: string[] = [];
    // The run's report goes to the test output when it fails (it is long, and quiet when it passes).
    ctx.onTestFailed(() => console.error(lines.join("\n")));
    const result: ChaosResult = await runChaos(
      {
        minutes: 2,
        seed: 20_241,
        profile: "short",
        rate: 4,
        instances: 2,
        brokers: 3,
        stackDir: join(REPO_ROOT, ".chaos", "short"),
        portBase: 16_090,
        sharedPostgres: true,
        keep: false,
        resultsDir: join(REPO_ROOT, "bench-results"),
      },
      (line) => lines.push(line),
    );
    const survived = result.outcomes.filter((o) => !o.error);
    expect(survived.filter((o) => o.event.kind === "broker")).toHaveLength(1);
    expect(new Set(survived.filter((o) => o.event.kind === "kill-service").map((o) => o.event.target.replace(/-\d$/, "")))).toEqual(
      new Set(["ingest", "dedup", "distribution", "sink-hotline-uk", "sink-industry-x"]),
    );
    expect(result.problems).toEqual([]);
    expect(result.reconciliation?.differences).toBeDefined();
    const nonZero = Object.entries(result.reconciliation?.differences ?? {}).filter(([, n]) => n > 0);
    expect(nonZero, result.reconciliation?.examples.join("\n")).toEqual([]);
    expect(result.ledger.accepted.size).toBeGreaterThan(300);
    expect(result.passed).toBe(true);
  }, 1_200_000);
});
