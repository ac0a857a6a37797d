/** Start/stop plumbing shared by the services' main.ts files. */
import type { Logger } from "./logging.ts";

/**
 * Calls `stop` once on SIGTERM or SIGINT, then exits. A second signal exits at once; a stop
 * that hangs is cut off after `graceMs` so an orchestrator's kill is never needed.
 */
export function onShutdown(logger: Logger, stop: () => Promise<void>, graceMs = 20_000): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, "second signal: exiting now");
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, "stopping: finishing the batch in hand");
    const timer = setTimeout(() => {
      logger.error("stop took too long; exiting");
      process.exit(1);
    }, graceMs);
    timer.unref();
    stop()
      .then(() => {
        logger.info("stopped cleanly");
        process.exit(0);
      })
      .catch((err: unknown) => {
        logger.error({ err }, "error while stopping");
        process.exit(1);
      });
  };
  process.on("SIGTERM", handler);
  process.on("SIGINT", handler);
}

/** Runs a service's main, printing a clear one-line reason (and code) when start-up fails. */
export function runMain(service: string, main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    const e = err as Error & { reason?: string; type?: string; name?: string };
    process.stderr.write(`${service}: failed to start${e.reason ? ` [${e.reason}]` : ""}: ${e.message}${kafkaAccessHint(e)}\n`);
    process.exit(1);
  });
}

/** What to do about the two start-up failures a secured broker causes. */
function kafkaAccessHint(e: { type?: string; name?: string }): string {
  if (e.name === "KafkaJSSASLAuthenticationError") {
    return " (the broker refused KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD; locally: infra/stack.sh principal <name>)";
  }
  if (e.type === "TOPIC_AUTHORIZATION_FAILED" || e.type === "GROUP_AUTHORIZATION_FAILED" || e.name === "KafkaJSGroupCoordinatorNotFound") {
    return " (this principal lacks ACLs for these topics or its consumer group: bin/hashrelay access apply [--namespace <ns>])";
  }
  return "";
}
