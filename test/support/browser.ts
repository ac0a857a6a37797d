/**
 * A headless browser for tests: Debian's chromium (`make setup` installs it), driven by
 * puppeteer-core, which downloads no browser. Where chromium is missing a browser test skips with
 * a message on its own runs, and fails under `make test`, which sets HASHRELAY_REQUIRE_BROWSER.
 */
import { existsSync } from "node:fs";
import puppeteer from "puppeteer-core";
import type { Browser } from "puppeteer-core";

export const CHROMIUM = process.env["HASHRELAY_CHROMIUM"] ?? "/usr/bin/chromium";
export const browserAvailable = existsSync(CHROMIUM);
export const browserRequired = Boolean(process.env["HASHRELAY_REQUIRE_BROWSER"]);
if (!browserAvailable && !browserRequired) {
  console.warn(`browser tests skipped: no chromium at ${CHROMIUM} (make setup installs it; make test fails without it)`);
}

export async function launchBrowser(): Promise<Browser> {
  if (!browserAvailable) {
    throw new Error(`no chromium at ${CHROMIUM}: run \`make setup\` as root (it installs Debian's chromium), or set HASHRELAY_CHROMIUM`);
  }
  // --no-sandbox: the tests run as root in a container, where chromium's sandbox cannot start.
  return puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
}
