import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // Fault tests restart the shared Kafka broker, so they run in a pass of their own (make test).
    include: process.env["HASHRELAY_FAULTS"] ? ["test/faults/**/*.test.ts"] : ["services/**/*.test.ts", "schemas/**/*.test.ts", "test/**/*.test.ts"],
    exclude: process.env["HASHRELAY_FAULTS"] ? [] : ["test/faults/**", "**/node_modules/**"],
    globalSetup: ["test/support/global-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Integration files share one broker; two workers keep a 2-core machine responsive.
    pool: "forks",
    maxWorkers: 2,
  },
});
