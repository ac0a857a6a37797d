/**
 * The chaos run's fault schedule: a seeded plan of what to break and when, decided before the run
 * starts, so a failing run can be repeated with its seed. The plan names roles ("the controller",
 * "the leader of a canonical partition", "dedup-2"); which broker that is gets resolved when the
 * fault fires. Pure: the executor (faults.ts) carries it out.
 */
import { seededRandom } from "../support/seeded-random.ts";

/** What a fault does. */
export type FaultKind = "kill-service" | "broker" | "pg-restart" | "partner-db-pause";

/** Which broker a broker fault hits, resolved when it fires. */
export type BrokerRole = "controller" | "leader" | "any";

export interface FaultEvent {
  /** Milliseconds after the start of the run. */
  readonly at: number;
  readonly kind: FaultKind;
  /** A service instance ("dedup-2"), a broker role, "hub" for PostgreSQL, or a partner id. */
  readonly target: string;
  /** kill: SIGKILL; stop: SIGTERM (a clean restart); immediate/fast: pg_ctl modes; lock/sigstop: how a partner database is paused. */
  readonly mode: "kill" | "stop" | "immediate" | "fast" | "lock" | "sigstop";
  /** How long it stays down or paused before it is brought back, in milliseconds. */
  readonly downMs: number;
}

/** Which lane a fault runs in: faults of one lane never overlap (the executor delays a busy lane). */
export function laneOf(e: FaultEvent): "broker" | "database" | "service" {
  if (e.kind === "broker") return "broker";
  if (e.kind === "pg-restart" || e.kind === "partner-db-pause") return "database";
  return "service";
}

export interface ScheduleOptions {
  readonly seed: number;
  readonly durationMs: number;
  /** Service instances that may be killed ("ingest", "dedup-1", ...). */
  readonly instances: readonly string[];
  readonly partners: readonly string[];
  /** full: faults at the rates below; short: one broker kill and one kill of each service. */
  readonly profile: "full" | "short" | "none";
  /** Whether the hub PostgreSQL may be restarted (not on a shared server). */
  readonly pgRestarts: boolean;
  readonly brokers: number;
}

/** Faults per minute of the full profile, and the least of each in any run. */
export const FULL_RATES = {
  serviceKills: { perMinute: 2.5, least: 2 },
  brokers: { perMinute: 1.1, least: 1 },
  pgRestarts: { perMinute: 0.2, least: 1 },
  partnerPauses: { perMinute: 0.25, least: 1 },
} as const;

// The same seed gives the same schedule.
export { seededRandom };

/** The service an instance runs: "sink-hotline-uk-2" -> "sink-hotline-uk", "ingest" -> "ingest". */
export function serviceOfInstance(instance: string): string {
  return instance.replace(/-\d+$/, "");
}

/**
 * The schedule: faults spread over the first 85% of the run (the rest is for recovery under
 * load), sorted by time. Broker faults alternate between the controller, a partition leader and
 * any broker, and between kill -9 and a clean stop; every service gets killed before any is killed twice.
 */
export function planSchedule(o: ScheduleOptions): FaultEvent[] {
  if (o.profile === "none") return [];
  const rnd = seededRandom(o.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const between = (lo: number, hi: number) => Math.round(lo + rnd() * (hi - lo));
  const start = Math.min(20_000, o.durationMs * 0.1);
  const end = o.durationMs * 0.85;
  const when = () => between(start, end);
  const minutes = o.durationMs / 60_000;
  const count = (r: { perMinute: number; least: number }) => Math.max(r.least, Math.round(r.perMinute * minutes));
  const events: FaultEvent[] = [];

  // Services: a shuffled round of every service, then instances at random, so each one is hit.
  const services = [...new Set(o.instances.map(serviceOfInstance))];
  const kills = o.profile === "short" ? services.length : Math.max(count(FULL_RATES.serviceKills), services.length);
  const order = [...services];
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [order[i], order[j]] = [order[j] as string, order[i] as string];
  }
  for (let i = 0; i < kills; i++) {
    const service = i < order.length ? (order[i] as string) : serviceOfInstance(pick(o.instances));
    const instance = pick(o.instances.filter((x) => serviceOfInstance(x) === service));
    events.push({ at: when(), kind: "kill-service", target: instance, mode: "kill", downMs: between(500, 6_000) });
  }

  if (o.brokers > 1) {
    const roles: BrokerRole[] = ["controller", "leader", "any"];
    // Spread evenly (a broker takes tens of seconds to start again, and one is down at a time).
    const n = o.profile === "short" ? 1 : count(FULL_RATES.brokers);
    const slot = (end - start) / n;
    for (let i = 0; i < n; i++) {
      const role = o.profile === "short" ? "controller" : (roles[i % roles.length] as BrokerRole);
      const mode = o.profile === "short" || i % 2 === 0 ? "kill" : "stop";
      const at = o.profile === "short" ? when() : Math.round(start + slot * (i + rnd() * 0.3));
      events.push({ at, kind: "broker", target: role, mode, downMs: between(1_000, 6_000) });
    }
  }

  if (o.pgRestarts && o.profile === "full") {
    for (let i = 0; i < count(FULL_RATES.pgRestarts); i++) {
      events.push({
        at: when(),
        kind: "pg-restart",
        target: "hub",
        mode: i % 2 === 0 ? "immediate" : "fast",
        downMs: between(1_000, 5_000),
      });
    }
  }

  const pauses = o.profile === "short" ? 1 : count(FULL_RATES.partnerPauses);
  for (let i = 0; i < pauses && o.partners.length; i++) {
    // SIGSTOP freezes backends that may hold server-wide locks: only where the server is ours.
    const mode = o.pgRestarts && i % 2 === 1 ? "sigstop" : "lock";
    events.push({ at: when(), kind: "partner-db-pause", target: pick(o.partners), mode, downMs: between(4_000, 15_000) });
  }
  return events.sort((a, b) => a.at - b.at);
}

/** Counts of a schedule by kind, for the report. */
export function scheduleCounts(events: readonly FaultEvent[]): Record<FaultKind, number> {
  const out: Record<FaultKind, number> = { "kill-service": 0, broker: 0, "pg-restart": 0, "partner-db-pause": 0 };
  for (const e of events) out[e.kind]++;
  return out;
}

const BROKER_ROLE_NAMES: Record<BrokerRole, string> = {
  controller: "the active controller",
  leader: "the leader of a canonical or submitted partition",
  any: "a broker",
};

export function describeEvent(e: FaultEvent): string {
  const t = `${(e.at / 1000).toFixed(1).padStart(6)} s`;
  const down = `${(e.downMs / 1000).toFixed(1)} s`;
  switch (e.kind) {
    case "kill-service":
      return `${t}  kill -9 ${e.target}, restart after ${down}`;
    case "broker":
      return `${t}  ${e.mode === "kill" ? "kill -9" : "stop (SIGTERM)"} ${BROKER_ROLE_NAMES[e.target as BrokerRole]}, start after ${down}`;
    case "pg-restart":
      return `${t}  restart the hub PostgreSQL (${e.mode} stop), down ${down}`;
    case "partner-db-pause":
      return `${t}  pause ${e.target}'s database (${e.mode === "lock" ? "exclusive table locks" : "SIGSTOP of its backends"}) for ${down}`;
  }
}
