import { describe, expect, it } from "vitest";
import { laneOf, planSchedule, scheduleCounts, seededRandom, serviceOfInstance } from "./schedule.ts";

const instances = ["ingest", "dedup-1", "dedup-2", "distribution-1", "distribution-2", "sink-hotline-uk-1", "sink-hotline-uk-2"];
const base = { seed: 7, instances, partners: ["hotline-uk"], pgRestarts: true, brokers: 3 };

describe("chaos schedule", () => {
  it("is the same for the same seed and differs for another", () => {
    const a = planSchedule({ ...base, durationMs: 600_000, profile: "full" });
    expect(planSchedule({ ...base, durationMs: 600_000, profile: "full" })).toEqual(a);
    expect(planSchedule({ ...base, seed: 8, durationMs: 600_000, profile: "full" })).not.toEqual(a);
    expect(seededRandom(1)()).toBe(seededRandom(1)());
  });

  it("has at least 10 broker faults, 20 service kills and 2 PostgreSQL restarts in ten minutes", () => {
    const counts = scheduleCounts(planSchedule({ ...base, durationMs: 600_000, profile: "full" }));
    expect(counts.broker).toBeGreaterThanOrEqual(10);
    expect(counts["kill-service"]).toBeGreaterThanOrEqual(20);
    expect(counts["pg-restart"]).toBeGreaterThanOrEqual(2);
    expect(counts["partner-db-pause"]).toBeGreaterThanOrEqual(1);
  });

  it("kills every service at least once, within the first 85% of the run, in time order", () => {
    const events = planSchedule({ ...base, durationMs: 180_000, profile: "full" });
    const killed = new Set(events.filter((e) => e.kind === "kill-service").map((e) => serviceOfInstance(e.target)));
    expect([...killed].sort()).toEqual(["dedup", "distribution", "ingest", "sink-hotline-uk"]);
    expect(events.every((e) => e.at >= 0 && e.at <= 180_000 * 0.85)).toBe(true);
    expect(events.map((e) => e.at)).toEqual([...events.map((e) => e.at)].sort((x, y) => x - y));
  });

  it("short: one controller kill and one kill of each service, no PostgreSQL restart", () => {
    const events = planSchedule({ ...base, pgRestarts: false, durationMs: 120_000, profile: "short" });
    const counts = scheduleCounts(events);
    expect(counts).toEqual({ "kill-service": 4, broker: 1, "pg-restart": 0, "partner-db-pause": 1 });
    expect(events.find((e) => e.kind === "broker")).toMatchObject({ target: "controller", mode: "kill" });
    // Without a server of its own the run never SIGSTOPs PostgreSQL backends.
    expect(events.filter((e) => e.kind === "partner-db-pause").every((e) => e.mode === "lock")).toBe(true);
  });

  it("plans no broker fault on a single broker and nothing at all in soak mode", () => {
    expect(scheduleCounts(planSchedule({ ...base, brokers: 1, durationMs: 600_000, profile: "full" })).broker).toBe(0);
    expect(planSchedule({ ...base, durationMs: 600_000, profile: "none" })).toEqual([]);
  });

  it("keeps brokers, databases and services in separate lanes", () => {
    const lanes = planSchedule({ ...base, durationMs: 600_000, profile: "full" }).map(laneOf);
    expect(new Set(lanes)).toEqual(new Set(["broker", "database", "service"]));
    expect(serviceOfInstance("sink-hotline-uk-2")).toBe("sink-hotline-uk");
  });
});
