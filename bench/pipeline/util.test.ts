import { describe, expect, it } from "vitest";
import { positiveIntegerArgs } from "./util.ts";

const DEFAULTS = { messages: 400, intervalMs: 50 };
const parse = (...argv: string[]) => positiveIntegerArgs("bench/kafka-floor.ts", argv, DEFAULTS);

describe("positiveIntegerArgs", () => {
  it("keeps the defaults without arguments and does not change them", () => {
    expect(parse()).toEqual({ messages: 400, intervalMs: 50 });
    parse("--messages", "9");
    expect(DEFAULTS).toEqual({ messages: 400, intervalMs: 50 });
  });

  it("takes each field as its kebab-case flag", () => {
    expect(parse("--interval-ms", "150", "--messages", "20")).toEqual({ messages: 20, intervalMs: 150 });
  });

  it("refuses an unknown flag, with the usage line built from the defaults", () => {
    expect(() => parse("--intervalMs", "150")).toThrow(
      "unknown argument --intervalMs; usage: node bench/kafka-floor.ts [--messages 400] [--interval-ms 50]",
    );
  });

  it.each([["0"], ["-3"], ["2.5"], ["10x"], [""]])("refuses %j as a count, naming the flag", (value) => {
    expect(() => parse("--messages", value)).toThrow(/^--messages needs a positive integer; usage: node bench\/kafka-floor\.ts/);
  });

  it("refuses a flag without a value", () => {
    expect(() => parse("--messages")).toThrow("--messages needs a positive integer");
  });
});
