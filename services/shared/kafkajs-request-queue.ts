/**
 * A correction to kafkajs 2.2.4's per-connection request queue, applied once when this module is
 * loaded (services/shared/kafka.ts imports it, so every client the services make has it). Its
 * scheduleCheckPendingRequests re-arms a timer even when nothing is pending and the connection is
 * not throttled; the delay it computes is then negative, which Node turns into 1 ms, so every
 * broker connection of an idle process wakes up about a thousand times a second (and Node 24 warns
 * "TimeoutNegativeWarning"). Upstream reports this ("Check pending requests runs in an infinite
 * loop", tulios/kafkajs pull request 1667, unreleased).
 *
 * Invariant kept: a pending request is always sent, as before. The check is scheduled exactly as
 * kafkajs does whenever a request is pending (at the end of a client-side throttle, or after its
 * 10 ms interval when the throttle is marginal) or the connection is throttled; it is skipped only
 * when nothing is pending and nothing is throttled, when the check would do nothing. A request that
 * arrives later is sent at once by push() or, if it must wait, schedules its own check.
 */
import { createRequire } from "node:module";

/** kafkajs's CHECK_PENDING_REQUESTS_INTERVAL (requestQueue/index.js). */
const CHECK_PENDING_REQUESTS_INTERVAL_MS = 10;

/** The parts of kafkajs's RequestQueue this correction reads and replaces. */
export interface RequestQueueInternals {
  pending: unknown[];
  throttledUntil: number;
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  checkPendingRequests(): void;
  scheduleCheckPendingRequests(): void;
}

export const RequestQueue = createRequire(import.meta.url)("kafkajs/src/network/requestQueue/index.js") as {
  new (options: Record<string, unknown>): RequestQueueInternals;
  prototype: RequestQueueInternals;
};

if (typeof RequestQueue.prototype.scheduleCheckPendingRequests !== "function") {
  // A kafkajs whose queue no longer looks like 2.2.4's: review this correction before upgrading.
  throw new Error("kafkajs RequestQueue.scheduleCheckPendingRequests not found; review services/shared/kafkajs-request-queue.ts");
}

RequestQueue.prototype.scheduleCheckPendingRequests = function scheduleCheckPendingRequests(this: RequestQueueInternals): void {
  if (this.throttleCheckTimeoutId) return;
  const untilUnthrottled = this.throttledUntil - Date.now();
  if (this.pending.length === 0 && untilUnthrottled <= 0) return; // nothing to send later: no timer
  const delay = this.pending.length > 0 && untilUnthrottled <= 0 ? CHECK_PENDING_REQUESTS_INTERVAL_MS : untilUnthrottled;
  this.throttleCheckTimeoutId = setTimeout(() => {
    this.throttleCheckTimeoutId = null;
    this.checkPendingRequests();
  }, delay);
};
