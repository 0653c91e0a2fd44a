// Drives Debian's Chromium with playwright-core for tests/test_readers_browser.py, one step at a time: the
// test writes one JSON command per line on stdin and reads one JSON answer per line on stdout, so it can
// check the mails and the store between two clicks.
//
// Commands: {"op": "goto", "url"}, {"op": "fill", "selector", "value"}, {"op": "check", "selector"},
// {"op": "click", "selector"} (waits for the page it leads to), {"op": "shot", "name"} (full-page
// screenshots at each width), {"op": "quit"}. Every answer carries the page's URL, status and text.
"use strict";

const readline = require("node:readline");
const path = require("node:path");
const { chromium } = require("playwright-core");

const WIDTHS = [375, 1280];

function say(answer) {
  process.stdout.write(JSON.stringify(answer) + "\n");
}

async function main() {
  const [executablePath, profile, shots] = process.argv.slice(2);
  // A fresh profile folder per run (playwright passes it as --user-data-dir).
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    viewport: { width: WIDTHS[WIDTHS.length - 1], height: 900 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  const page = context.pages()[0] || (await context.newPage());
  let status = 0;
  page.on("response", (response) => {
    if (response.request().isNavigationRequest() && response.frame() === page.mainFrame()) {
      status = response.status();
    }
  });

  async function state(extra) {
    const text = await page.locator("body").innerText().catch(() => "");
    return { ok: true, url: page.url(), status, title: await page.title(), text, ...extra };
  }

  const steps = {
    async goto(cmd) {
      await page.goto(cmd.url, { waitUntil: "load" });
      return state();
    },
    async fill(cmd) {
      await page.fill(cmd.selector, cmd.value);
      return state();
    },
    async check(cmd) {
      await page.check(cmd.selector);
      return state();
    },
    async click(cmd) {
      await Promise.all([page.waitForNavigation({ waitUntil: "load" }), page.click(cmd.selector)]);
      return state();
    },
    async shot(cmd) {
      const files = [];
      for (const width of WIDTHS) {
        await page.setViewportSize({ width, height: 900 });
        const file = path.join(shots, `${cmd.name}-${width}.png`);
        await page.screenshot({ path: file, fullPage: true });
        files.push(file);
      }
      return state({ files });
    },
  };

  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (!line.trim()) continue;
    const cmd = JSON.parse(line);
    if (cmd.op === "quit") break;
    try {
      say(await steps[cmd.op](cmd));
    } catch (error) {
      say({ ok: false, error: String(error && error.message ? error.message : error).split("\n")[0] });
    }
  }
  await context.close();
}

main().catch((error) => {
  say({ ok: false, error: String(error && error.message ? error.message : error).split("\n")[0] });
  process.exit(1);
});
