/**
 * Gauges read at scrape time: what needs SQL or a Kafka admin call (lag, outbox depth, key expiry)
 * is never worked out per message, but when Prometheus asks. A source is one read shared by the
 * gauges built on it, made at most once per `ttlMs` however many gauges and scrapers ask, one read
 * in flight at a time. A read that fails or outlasts `timeoutMs` leaves its gauges empty for that
 * scrape (no series; NaN for a gauge without labels, which always has one): never a stale value,
 * so an alert on them goes quiet rather than wrong. It counts
 * hashrelay_metrics_source_errors_total{source}; it is logged when a source starts failing, and
 * when it recovers, not at every scrape.
 */
import { Counter, Gauge } from "prom-client";
import type { Registry } from "prom-client";
import type { Logger } from "./logging.ts";

/** Long enough that two Prometheus servers scraping together cost one read; short next to a scrape interval. */
export const SCRAPE_CACHE_MS = 5_000;
/** A scrape must answer even when the database or the broker does not. */
export const SCRAPE_READ_TIMEOUT_MS = 4_000;

export interface GaugeSample<L extends string> {
  readonly labels?: Partial<Record<L, string | number>>;
  readonly value: number;
}

export interface ScrapeSource<T> {
  /** The latest read, at most `ttlMs` old; null when the read failed. */
  get(): Promise<T | null>;
  /** A gauge whose samples come from this source's read. */
  gauge<L extends string = never>(
    definition: { name: string; help: string; labelNames?: readonly L[] },
    samples: (snapshot: T) => readonly GaugeSample<L>[],
  ): Gauge<L>;
}

export class ScrapeSources {
  private readonly registry: Registry;
  private readonly logger: Logger;
  private readonly errors: Counter<"source">;
  private readonly ttlMs: number;
  private readonly timeoutMs: number;

  constructor(registry: Registry, logger: Logger, options: { ttlMs?: number; timeoutMs?: number } = {}) {
    this.registry = registry;
    this.logger = logger;
    this.ttlMs = options.ttlMs ?? SCRAPE_CACHE_MS;
    this.timeoutMs = options.timeoutMs ?? SCRAPE_READ_TIMEOUT_MS;
    this.errors = new Counter({
      name: "hashrelay_metrics_source_errors_total",
      help: "Scrape-time reads (SQL, Kafka admin) that failed or timed out; their gauges were left empty",
      labelNames: ["source"] as const,
      registers: [registry],
    });
  }

  source<T>(name: string, read: () => Promise<T>): ScrapeSource<T> {
    this.errors.labels(name).inc(0);
    let cached: { at: number; value: T | null } | null = null;
    let inFlight: Promise<T | null> | null = null;
    let failing = false;
    const load = async (): Promise<T | null> => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      });
      try {
        const value = await Promise.race([read(), timeout]);
        if (failing) this.logger.info({ source: name }, "metrics source answers again");
        failing = false;
        return value;
      } catch (err) {
        this.errors.labels(name).inc();
        if (!failing) this.logger.warn({ err, source: name }, "metrics source failed; its gauges are empty until it answers");
        failing = true;
        return null;
      } finally {
        clearTimeout(timer);
      }
    };
    const get = (): Promise<T | null> => {
      if (cached && performance.now() - cached.at < this.ttlMs) return Promise.resolve(cached.value);
      inFlight ??= load().then((value) => {
        cached = { at: performance.now(), value };
        inFlight = null;
        return value;
      });
      return inFlight;
    };
    const registry = this.registry;
    return {
      get,
      gauge<L extends string = never>(
        definition: { name: string; help: string; labelNames?: readonly L[] },
        samples: (snapshot: T) => readonly GaugeSample<L>[],
      ): Gauge<L> {
        return new Gauge<L>({
          name: definition.name,
          help: definition.help,
          labelNames: definition.labelNames ?? [],
          registers: [registry],
          async collect() {
            const snapshot = await get();
            this.reset();
            if (snapshot === null) {
              if ((definition.labelNames ?? []).length === 0) this.set(Number.NaN);
              return;
            }
            for (const s of samples(snapshot)) {
              if (s.labels) this.set(s.labels, s.value);
              else this.set(s.value);
            }
          },
        });
      },
    };
  }
}
