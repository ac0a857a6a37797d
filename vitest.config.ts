import { defineConfig } from "vitest/config";

// Projects: "unit" needs nothing running (npm run test:unit), "stack" runs against the local
// Kafka, PostgreSQL and S3 (global setup reads .stack/env), and "faults" restarts the shared broker,
// so it only runs in a pass of its own (HASHRELAY_FAULTS=1, the second pass of make test).
// With HASHRELAY_STACK=containers (make test STACK=containers) the stack is containers started by
// the global setup; the unit tests are left to the main pass, and test/images/ runs the built images.
const UNIT = [
  "services/**/*.test.ts",
  "schemas/**/*.test.ts",
  "test/hostile/**/*.test.ts",
  "test/deploy/**/*.test.ts",
  "test/chaos/**/*.test.ts",
  "test/*.test.ts",
];
const NEEDS_STACK = ["test/integration/**/*.test.ts", "test/repo-hygiene.test.ts"];
const IMAGES = ["test/images/**/*.test.ts"];
const FAULTS = ["test/faults/**/*.test.ts"];
const faults = Boolean(process.env["HASHRELAY_FAULTS"]);
const containers = process.env["HASHRELAY_STACK"] === "containers";
const setup = { globalSetup: ["test/support/global-setup.ts"] };

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
      ? [{ test: { ...shared, ...setup, name: "faults", include: FAULTS } }]
      : containers
        ? // One project, so one global setup: one container stack for both file sets.
          [{ test: { ...shared, ...setup, name: "stack", include: [...NEEDS_STACK, ...IMAGES] } }]
        : [
            { test: { ...shared, name: "unit", include: UNIT, exclude: [...NEEDS_STACK, "**/node_modules/**"] } },
            { test: { ...shared, ...setup, name: "stack", include: NEEDS_STACK } },
          ],
  },
});
