/**
 * Runs once before the suite. Two ways to reach a real stack:
 * - default: the local processes started by `make up` (infra/stack.sh); their addresses are in
 *   .stack/env and are exported here so every test worker sees them;
 * - HASHRELAY_STACK=containers (`make test STACK=containers`): Kafka, PostgreSQL and s3proxy
 *   containers from the images of `make images`, started through testcontainers with the local
 *   stack's security settings on other ports (test/support/container-stack.ts), removed afterwards.
 * Variables already set in the environment win, so CI or a developer can point tests elsewhere.
 */
import { localStackEnv } from "../../services/shared/config.ts";

export default async function setup(): Promise<(() => Promise<void>) | void> {
  if (process.env["HASHRELAY_STACK"] === "containers") {
    const { startContainerStack } = await import("./container-stack.ts");
    const stack = await startContainerStack();
    // The stack dir first: localStackEnv() in the workers (and the services they start) reads its env file.
    for (const [key, value] of Object.entries(stack.control)) process.env[key] = value;
    for (const [key, value] of Object.entries(stack.env)) process.env[key] ??= value;
    return stack.stop;
  }
  for (const [key, value] of Object.entries(localStackEnv())) {
    if (process.env[key] === undefined) process.env[key] = value;
  }
}
