import { describe, expect, it } from "vitest";
import { z } from "zod";
import { ConfigError } from "../shared/errors.ts";
import { defaultMinInsyncReplicas } from "../shared/topics.ts";
import { configShape, startDistribution } from "./main.ts";

// Addresses nothing listens on: the checks under test must fail before any connection is tried.
const base = {
  KAFKA_BROKERS: "127.0.0.1:9",
  DATABASE_URL: "postgres://nobody@127.0.0.1:9/none",
  HUB_KEY_ID: "hub:0000000000000000",
  HUB_SIGNING_KEY_FILE: "/nonexistent/hub.key",
  DISTRIBUTION_PSEUDONYM_SECRET: "synthetic-pseudonym-secret",
  S3_ENDPOINT: "http://127.0.0.1:9",
  S3_ACCESS_KEY_ID: "synthetic",
  S3_SECRET_ACCESS_KEY: "synthetic-secret",
  S3_BUCKET: "none",
  LOG_LEVEL: "silent" as const,
};

describe("feed topic durability", () => {
  it("defaults min.insync.replicas to 2 from 3 replicas up, else 1", () => {
    expect([1, 2, 3, 5].map(defaultMinInsyncReplicas)).toEqual([1, 1, 2, 2]);
  });

  it("refuses a min.insync.replicas above the replication factor at start-up", async () => {
    const start = startDistribution({ ...base, DISTRIBUTION_FEED_REPLICATION: 2, DISTRIBUTION_FEED_MIN_INSYNC_REPLICAS: 3 });
    await expect(start).rejects.toThrow(ConfigError);
    await expect(start).rejects.toThrow(/MIN_INSYNC_REPLICAS 3 exceeds DISTRIBUTION_FEED_REPLICATION 2/);
  });
});

describe("feed signing mode", () => {
  it("signs every record unless the chain-signed form is asked for, and refuses anything else", async () => {
    expect(z.object(configShape).parse(base).DISTRIBUTION_FEED_SIGNING).toBe("every-record");
    expect(z.object(configShape).parse({ ...base, DISTRIBUTION_FEED_SIGNING: "chain" }).DISTRIBUTION_FEED_SIGNING).toBe("chain");
    const start = startDistribution({ ...base, DISTRIBUTION_FEED_SIGNING: "sometimes" as "chain" });
    await expect(start).rejects.toThrow(ConfigError);
    await expect(start).rejects.toThrow(/DISTRIBUTION_FEED_SIGNING/);
  });
});
