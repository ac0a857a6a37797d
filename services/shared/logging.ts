/**
 * pino JSON logs with the service name on every line. Redaction is the safety net behind the
 * rule that code never passes secrets or law-enforcement-only fields to a logger.
 */
import pino from "pino";
import type { Logger } from "pino";

export type { Logger };

/** Paths pino censors wherever they appear (one and two levels deep). */
export const REDACTED_PATHS = [
  "privateKey",
  "privateKeyPem",
  "secret",
  "password",
  "KAFKA_SASL_PASSWORD",
  "S3_SECRET_ACCESS_KEY",
  "signature",
  "lawEnforcement",
  "restricted",
  "caseRef",
  "caseRefs",
  "series",
  "victimIdentified",
  "offenderIdentified",
  "graderRef",
  "graderRefs",
  "authorization",
].flatMap((p) => [p, `*.${p}`, `*.*.${p}`]);

export function createLogger(
  service: string,
  level: string = process.env["LOG_LEVEL"] ?? "info",
  destination?: pino.DestinationStream,
): Logger {
  const options = {
    level,
    base: { service },
    redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return destination ? pino(options, destination) : pino(options);
}
