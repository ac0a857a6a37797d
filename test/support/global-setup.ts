/**
 * Runs once before the suite: exports the local stack's addresses (.stack/env, written by
 * `make up`) so every test worker sees the same KAFKA_BROKERS, DATABASE_URL and S3 settings.
 * Variables already set in the environment win, so CI or a developer can point tests elsewhere.
 */
import { localStackEnv } from "../../services/shared/config.ts";

export default function setup(): void {
  for (const [key, value] of Object.entries(localStackEnv())) {
    if (process.env[key] === undefined) process.env[key] = value;
  }
}
