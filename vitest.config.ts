import { defineConfig } from "vitest/config";

// Three projects: "unit" needs nothing running (npm run test:unit), "stack" runs against the local
// Kafka, PostgreSQL and S3 (global setup reads .stack/env), and "faults" restarts the shared broker,
// so it only runs in a pass of its own (HASHRELAY_FAULTS=1, the second pass of make test).
const UNIT = ["services/**/*.test.ts", "schemas/**/*.test.ts", "test/hostile/**/*.test.ts", "test/deploy/**/*.test.ts", "test/chaos/**/*.test.ts", "test/*.test.ts"];
const NEEDS_STACK = ["test/integration/**/*.test.ts", "test/repo-hygiene.test.ts"];
const FAULTS = ["test/faults/**/*.test.ts"];
const faults = Boolean(process.env["HASHRELAY_FAULTS"]);

const shared = {
  testTimeout: 60_000,
  hookTimeout: 120_000,
};

export default defineConfig({
  test: {
    // Integration files share one broker; two workers keep a 2-core machine responsive.
    pool: "forks",
    maxWorkers: 2,
    projects: faults
      ? [{ test: { ...shared, name: "faults", include: FAULTS, globalSetup: ["test/support/global-setup.ts"] } }]
      : [
          { test: { ...shared, name: "unit", include: UNIT, exclude: [...NEEDS_STACK, "**/node_modules/**"] } },
          { test: { ...shared, name: "stack", include: NEEDS_STACK, globalSetup: ["test/support/global-setup.ts"] } },
        ],
  },
});
