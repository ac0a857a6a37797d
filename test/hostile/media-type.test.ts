/**
 * Hostile Content-Type headers for the ingest API's media type check: random and near-miss values,
 * quotes, separators and parameter floods up to Node's 16 KiB header limit. The check may only
 * answer; a header it accepts names a type of its route and no charset but UTF-8, and a refusal
 * quotes a bounded part of what was sent, in linear time.
 */
import { describe, expect, it } from "vitest";
import { ACCEPTED_MEDIA_TYPES, checkMediaType } from "../../services/ingest/media-type.ts";
import type { BodyRoute } from "../../services/ingest/media-type.ts";
import { int, pick, prng, randomFrom, withinBudget } from "./support.ts";

const ROUTES = Object.keys(ACCEPTED_MEDIA_TYPES) as BodyRoute[];
const NODE_HEADER_LIMIT = 16 * 1024;

/** Whether a header the check accepted is one it should: its essence listed, every charset UTF-8. */
function acceptable(header: string, route: BodyRoute): boolean {
  const [essence = "", ...parameters] = header.split(";");
  const charsets = parameters
    .filter((p) => p.includes("=") && p.slice(0, p.indexOf("=")).trim().toLowerCase() === "charset")
    .map((p) =>
      p
        .slice(p.indexOf("=") + 1)
        .trim()
        .replace(/^"(.*)"$/, "$1")
        .toLowerCase(),
    );
  return (
    (ACCEPTED_MEDIA_TYPES[route] as readonly string[]).includes(essence.trim().toLowerCase()) &&
    charsets.every((c) => c === "utf-8" || c === "utf8")
  );
}

function expectAnswer(header: string, route: BodyRoute): void {
  const check = checkMediaType(header, route);
  if (check.ok) expect(acceptable(header, route), `accepted ${JSON.stringify(header.slice(0, 200))}`).toBe(true);
  else expect(check.detail.length, `detail for ${JSON.stringify(header.slice(0, 200))}`).toBeLessThan(400);
}

describe("checkMediaType: hostile headers", () => {
  it("5000 random and near-miss headers: answered, accepted only when they should be, refusals bounded", async () => {
    const rng = prng();
    const pieces = ["application/json", "application/x-ndjson", "application/jsonl", "text/plain", ";", "=", '"', " ", "charset", "utf-8"];
    await withinBudget(5_000, () => {
      for (let i = 0; i < 5000; i++) {
        const header =
          i % 2 === 0
            ? randomFrom(rng, ' \t;=",/+-.abcjnostuxACJNOSU0189\u00e9\u0000', int(rng, 80)).toString("latin1")
            : Array.from({ length: 1 + int(rng, 8) }, () => pick(rng, pieces)).join("");
        expectAnswer(header, pick(rng, ROUTES));
      }
    });
  });

  it("parameter floods and long values up to the header limit are answered in linear time", async () => {
    const floods = [
      `application/json${"; charset=utf-8".repeat(NODE_HEADER_LIMIT / 16)}`,
      `application/json${"; charset=utf-8".repeat(NODE_HEADER_LIMIT / 16 - 1)}; charset=latin1`,
      `application/json${";".repeat(NODE_HEADER_LIMIT)}`,
      `application/json; charset=${'"'.repeat(NODE_HEADER_LIMIT)}`,
      `${"a".repeat(NODE_HEADER_LIMIT)}/json`,
      "=".repeat(NODE_HEADER_LIMIT),
    ];
    await withinBudget(1_000, () => {
      for (const header of floods) for (const route of ROUTES) expectAnswer(header, route);
    });
    expect(checkMediaType(floods[0], "/v1/submissions").ok).toBe(true);
    expect(checkMediaType(floods[1], "/v1/submissions").ok).toBe(false);
  });
});
