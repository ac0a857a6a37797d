import { describe, expect, it } from "vitest";
import { checkMediaType } from "./media-type.ts";

const detail = (header: string | undefined, route: "/v1/submissions" | "/v1/imports" = "/v1/submissions") => {
  const check = checkMediaType(header, route);
  return check.ok ? "OK" : check.detail;
};

describe("checkMediaType", () => {
  it("reads each route's types, in any case, with or without charset=utf-8 and other parameters", () => {
    for (const header of [
      "application/json",
      " APPLICATION/JSON ",
      "application/json;charset=UTF-8",
      'application/json; charset="utf-8"',
      "application/json; version=1",
      "application/json; charset",
      "application/x-ndjson",
      "application/jsonl; charset=utf8",
    ]) {
      expect(detail(header), header).toBe("OK");
    }
    expect(detail("application/json; charset=utf-8", "/v1/imports")).toBe("OK");
  });

  it("refuses a missing or empty header, other types and JSON Lines on /v1/imports, naming what is read", () => {
    expect(detail(undefined)).toMatch(/^POST \/v1\/submissions needs a Content-Type header; send Content-Type application\/json, /);
    expect(detail("  ")).toMatch(/needs a Content-Type header/);
    expect(detail("application/json-seq")).toMatch(/"application\/json-seq" is not read by POST \/v1\/submissions/);
    expect(detail("application/vnd.api+json")).toMatch(/is not read/);
    expect(detail("json")).toMatch(/"json" is not read/);
    expect(detail("application/x-ndjson", "/v1/imports")).toBe(
      'Content-Type "application/x-ndjson" is not read by POST /v1/imports; send Content-Type application/json (UTF-8; charset=utf-8 or no charset)',
    );
  });

  it("refuses every charset but UTF-8, also when a second charset parameter contradicts the first", () => {
    expect(detail("application/json; charset=latin1")).toMatch(
      /^charset "latin1" is not read by POST \/v1\/submissions: bodies are JSON in UTF-8/,
    );
    expect(detail("application/json; charset=ISO-8859-1")).toMatch(/charset "iso-8859-1"/);
    expect(detail("application/json; charset=utf-16le")).toMatch(/charset "utf-16le"/);
    expect(detail("application/json; charset=")).toMatch(/charset "" is not read/);
    expect(detail("application/json; charset=utf-8; charset=latin1")).toMatch(/charset "latin1"/);
  });

  it("quotes at most a short prefix of what was sent", () => {
    const long = `text/${"x".repeat(10_000)}`;
    const said = detail(long);
    expect(said.length).toBeLessThan(300);
    expect(said).toContain("…");
  });
});
