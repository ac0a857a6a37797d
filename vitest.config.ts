import { existsSync } from "node:fs";
import { defineConfig } from "vitest/config";

// Projects: "unit" needs nothing running (npm run test:unit), "stack" runs against the local
// Kafka, PostgreSQL and S3 (global setup reads .stack/env), and "faults" restarts the shared broker,
// so it only runs in a pass of its own (HASHRELAY_FAULTS=1, the second pass of make test).
// With HASHRELAY_STACK=containers (make test STACK=containers) the stack is containers started by
// the global setup; the unit tests are left to the main pass, and test/images/ runs the built images.
// HASHRELAY_SUITE=ci (`make test STACK=containers SUITE=ci`, what .ci/run runs) narrows that pass
// and its fault pass to CONTAINERS_CI and CONTAINERS_CI_FAULTS; the full pass stays the default.
const UNIT = [
  "services/**/*.test.ts",
  "schemas/**/*.test.ts",
  "test/hostile/**/*.test.ts",
  "test/deploy/**/*.test.ts",
  "test/chaos/**/*.test.ts",
  "test/*.test.ts",
  "bench/**/*.test.ts",
];
const NEEDS_STACK = ["test/integration/**/*.test.ts", "test/repo-hygiene.test.ts"];
const IMAGES = ["test/images/**/*.test.ts"];
// `make chaos-short` runs the short chaos run alone; make test's fault pass runs it with the rest.
const CHAOS_SHORT = "test/faults/chaos-short.test.ts";
const FAULTS = process.env["HASHRELAY_CHAOS_SHORT"] ? [CHAOS_SHORT] : ["test/faults/**/*.test.ts"];
// The containers pass CI runs: the files whose outcome depends on how the images and the container
// stack are built and configured rather than on the code, which the main pass already tests.
const CONTAINERS_CI = [
  "test/images/hub-image.test.ts", // the hub and partner-sink images, run as the manifests deploy them
  "test/integration/kafka-access.test.ts", // the broker image's TLS, SCRAM principals and ACLs
  "test/integration/s3-exports.test.ts", // streamed snapshots and deltas through the s3proxy image
  "test/integration/distribution.test.ts", // ingest to partner databases and S3 files, end to end
];
// Its fault pass: the pipeline through kills, partner outages and a restart of the broker container.
const CONTAINERS_CI_FAULTS = ["test/faults/pipeline-faults.test.ts"];
const faults = Boolean(process.env["HASHRELAY_FAULTS"]);
const containers = process.env["HASHRELAY_STACK"] === "containers";
const suite = process.env["HASHRELAY_SUITE"] ?? "full";
if (suite !== "full" && suite !== "ci") throw new Error(`HASHRELAY_SUITE must be full or ci, not '${suite}'`);
if (suite === "ci" && !containers) throw new Error("HASHRELAY_SUITE=ci narrows the containers pass: set HASHRELAY_STACK=containers too");
// A renamed file would otherwise leave the CI pass quietly smaller.
const missing = [...CONTAINERS_CI, ...CONTAINERS_CI_FAULTS].filter((f) => !existsSync(new URL(f, import.meta.url)));
if (missing.length > 0) throw new Error(`vitest.config.ts: CONTAINERS_CI names missing files: ${missing.join(", ")}`);
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
      ? [{ test: { ...shared, ...setup, name: "faults", include: suite === "ci" ? CONTAINERS_CI_FAULTS : FAULTS } }]
      : containers
        ? // One project, so one global setup: one container stack for both file sets.
          [{ test: { ...shared, ...setup, name: "stack", include: suite === "ci" ? CONTAINERS_CI : [...NEEDS_STACK, ...IMAGES] } }]
        : [
            { test: { ...shared, name: "unit", include: UNIT, exclude: [...NEEDS_STACK, "**/node_modules/**"] } },
            { test: { ...shared, ...setup, name: "stack", include: NEEDS_STACK } },
          ],
  },
});
