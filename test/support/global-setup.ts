/**
 * Runs once before the suite. Two ways to reach a real stack:
 * - default: the local processes started by `make up` (infra/stack.sh); their addresses are in
 *   .stack/env and are exported here so every test worker sees them;
 * - HASHRELAY_STACK=containers (`make test STACK=containers`): Kafka, PostgreSQL and s3proxy
 *   containers from the images of `make images`, started through testcontainers with the local
 *   stack's security settings on other ports (test/support/container-stack.ts), removed afterwards.
 * With the local stack, variables already set in the environment win, so CI or a developer can
 * point tests elsewhere; the container stack's own values always apply.
 */
import { localStackEnv } from "../../services/shared/config.ts";

export default async function setup(): Promise<(() => Promise<void>) | void> {
  if (process.env["HASHRELAY_STACK"] === "containers") {
    const { startContainerStack } = await import("./container-stack.ts");
    const stack = await startContainerStack();
    // This stack's values replace any in the environment (a shell with the local stack's exported
    // would otherwise mix the two), and its stack dir is where the workers' localStackEnv() reads.
    for (const [key, value] of Object.entries({ ...stack.control, ...stack.env })) process.env[key] = value;
    return stack.stop;
  }
  for (const [key, value] of Object.entries(localStackEnv())) {
    if (process.env[key] === undefined) process.env[key] = value;
  }
}
