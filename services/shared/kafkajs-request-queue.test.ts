/**
 * The kafkajs request-queue correction (kafkajs-request-queue.ts): an idle connection arms no
 * timer, and a request held back by client-side throttling is still sent when the throttle ends.
 */
import { afterEach, describe, expect, it } from "vitest";
import { RequestQueue } from "./kafkajs-request-queue.ts";
import type { RequestQueueInternals } from "./kafkajs-request-queue.ts";

const quiet = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
const queues: (RequestQueueInternals & { destroy(): void })[] = [];

function queue() {
  const q = new RequestQueue({
    maxInFlightRequests: null,
    requestTimeout: 30_000,
    enforceRequestTimeout: false,
    clientId: "test",
    broker: "127.0.0.1:9092",
    logger: quiet,
  }) as RequestQueueInternals & {
    destroy(): void;
    maybeThrottle(ms: number): void;
    push(r: { entry: object; expectResponse: boolean; sendRequest: () => void }): void;
  };
  queues.push(q);
  return q;
}

afterEach(() => {
  for (const q of queues.splice(0)) q.destroy();
});

describe("kafkajs request queue", () => {
  it("arms no timer when nothing is pending and nothing is throttled", () => {
    const q = queue();
    q.checkPendingRequests(); // what every response does (fulfillRequest)
    expect(q.throttleCheckTimeoutId).toBeNull();
  });

  it("still sends a request held back by a throttle once the throttle ends", async () => {
    const q = queue();
    let sentAt = 0;
    q.maybeThrottle(50);
    const pushedAt = Date.now();
    q.push({
      entry: { correlationId: 1, apiKey: 3, apiName: "Metadata", apiVersion: 6 },
      expectResponse: true,
      sendRequest: () => {
        sentAt = Date.now();
      },
    });
    expect(sentAt).toBe(0);
    expect(q.throttleCheckTimeoutId).not.toBeNull();
    await new Promise((r) => setTimeout(r, 150));
    expect(sentAt - pushedAt).toBeGreaterThanOrEqual(45);
    expect(q.pending).toHaveLength(0);
  });
});
