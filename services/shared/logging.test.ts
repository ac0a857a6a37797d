import { describe, expect, it } from "vitest";
import { unsignedSubmission } from "../../test/support/fixtures.ts";
import { createLogger } from "./logging.ts";
import { generateSigningKeyPair } from "./wire/signing.ts";

function capture(): { lines: string[]; stream: { write(s: string): void } } {
  const lines: string[] = [];
  return { lines, stream: { write: (s: string) => void lines.push(s) } };
}

describe("logs", () => {
  it("never carry secrets or law-enforcement-only fields, even when code passes them by mistake", () => {
    const { lines, stream } = capture();
    const log = createLogger("test", "info", stream);
    const sub = unsignedSubmission({
      lawEnforcement: {
        caseRef: "SYN-SECRET-CASE",
        series: "SYN-SERIES",
        victimIdentified: true,
        offenderIdentified: true,
        isDistributed: true,
        graderRef: "SYN-GRADER",
      },
    });
    const keys = generateSigningKeyPair();
    log.info({ submission: sub, privateKeyPem: keys.privateKeyPem, agencyId: sub.agencyId }, "oops");
    log.info({ record: { restricted: { caseRefs: ["SYN-SECRET-CASE"] } }, caseRef: "SYN-SECRET-CASE" }, "oops again");
    log.info(
      { config: { KAFKA_SASL_USERNAME: "partner-x", KAFKA_SASL_PASSWORD: "SYN-KAFKA-PASSWORD", S3_SECRET_ACCESS_KEY: "SYN-S3-SECRET" } },
      "config",
    );
    log.info({ sasl: { mechanism: "scram-sha-512", username: "partner-x", password: "SYN-KAFKA-PASSWORD" } }, "kafka");
    const text = lines.join("");
    expect(text).toContain('"KAFKA_SASL_USERNAME":"partner-x"');
    expect(text).toContain('"agencyId":"force-a"');
    for (const secret of ["SYN-SECRET-CASE", "SYN-SERIES", "SYN-GRADER", "PRIVATE KEY", "SYN-KAFKA-PASSWORD", "SYN-S3-SECRET"])
      expect(text).not.toContain(secret);
    expect(text).toContain("[redacted]");
  });
});
