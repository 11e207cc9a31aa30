// Runs the storefront's browser journeys in headless Chromium against a
// running fleet, in sequence, stopping at the first failure.
//
//   BAZAAR_URL          the gateway (default http://127.0.0.1:8080)
//   BAZAAR_CHROMIUM     the browser (default /usr/bin/chromium)
//   BAZAAR_SCREENSHOTS  where every page's PNG goes (default ./screenshots)
//   BAZAAR_ADMIN_EMAIL, BAZAAR_ADMIN_PASSWORD  for the ops journeys, if any
//
// The shop's journeys are in shop.mjs; ops.mjs, when present, exports
// `async function run({ browser, baseUrl, screenshot, admin })`.
import { existsSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { chromium } from "playwright-core";

import * as shop from "./shop.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const baseUrl = (process.env.BAZAAR_URL || "http://127.0.0.1:8080").replace(/\/$/, "");
const executablePath = process.env.BAZAAR_CHROMIUM || "/usr/bin/chromium";
const shots = resolve(process.env.BAZAAR_SCREENSHOTS || join(here, "screenshots"));
mkdirSync(shots, { recursive: true });

let shotCount = 0;
/** Saves a full-page PNG of `page` as `NN-name.png`. */
async function screenshot(page, name) {
  shotCount += 1;
  const file = join(shots, `${String(shotCount).padStart(2, "0")}-${name.replace(/[^a-z0-9-]+/gi, "-")}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

const admin = {
  email: process.env.BAZAAR_ADMIN_EMAIL,
  password: process.env.BAZAAR_ADMIN_PASSWORD,
};

function fail(what, error) {
  console.error(`\nFAILED: ${what}\n${error && error.stack ? error.stack : error}`);
  console.error(`Screenshots so far: ${shots}`);
  process.exitCode = 1;
}

async function main() {
  if (!existsSync(executablePath)) {
    fail("launch", `no Chromium at ${executablePath} (set BAZAAR_CHROMIUM)`);
    return;
  }
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    // Root in a container has no user namespace for the sandbox.
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  const context = { browser, baseUrl, screenshot, admin };
  try {
    const suites = [["shop", shop]];
    const opsFile = join(here, "ops.mjs");
    if (existsSync(opsFile)) {
      suites.push(["ops", await import(pathToFileURL(opsFile).href)]);
    }
    for (const [name, suite] of suites) {
      const started = Date.now();
      console.log(`== ${name}`);
      try {
        await suite.run(context);
      } catch (error) {
        // What every open page showed when it failed.
        for (const page of browser.contexts().flatMap((c) => c.pages())) {
          await screenshot(page, `FAILED-${name}`).catch(() => {});
        }
        fail(`${name}: ${error.message || error}`, error);
        return;
      }
      console.log(`== ${name}: ok in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }
    console.log(`All journeys passed; ${shotCount} screenshots in ${shots}`);
  } finally {
    await browser.close();
  }
}

main().catch((error) => fail("runner", error));
