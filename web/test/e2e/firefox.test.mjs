// The console in Firefox (Debian's firefox-esr, driven over WebDriver BiDi by
// puppeteer-core, which downloads no browser): sign in, every page renders, classify and
// a streamed chat work, and the browser's console stays free of errors. The Chromium test
// covers the whole worked example; this one proves the same app works in Firefox.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import puppeteer from "puppeteer-core";
import { DATA, SCREENSHOTS, call, pullChatModel, startServer } from "./harness.mjs";

const FIREFOX = process.env.FIREFOX ?? "/usr/bin/firefox-esr";

let server;
let browser;
let page;
const errors = [];

before(async () => {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  server = await startServer();
  const { url, key } = server;
  assert.ok([200, 201].includes((await pullChatModel(url, key)).status));
  // A deployed classifier to try: the BBC data, trained through the API.
  const csv = fs.readFileSync(path.join(DATA, "bbc-train.csv"));
  const up = await fetch(`${url}/api/v1/datasets?name=bbc`, { method: "POST", headers: { Authorization: `Bearer ${key}` }, body: csv });
  assert.equal(up.status, 201, await up.text());
  const job = await call(url, key, "POST", "/api/v1/jobs", { dataset: "bbc", model: "news", deploy: true, config: { architecture: "avgpool", epochs: 6 } });
  assert.equal(job.status, 202, JSON.stringify(job.body));
  for (let i = 0; i < 600; i++) {
    const j = await call(url, key, "GET", `/api/v1/jobs/${job.body.id}`);
    if (j.body.status === "succeeded") break;
    assert.ok(!["failed", "cancelled"].includes(j.body.status), JSON.stringify(j.body));
    await new Promise((r) => setTimeout(r, 500));
  }
  browser = await puppeteer.launch({ browser: "firefox", executablePath: FIREFOX, headless: true, protocol: "webDriverBiDi" });
  page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  page.setDefaultTimeout(90_000);
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  page.on("pageerror", (e) => errors.push(`uncaught: ${e.message}`));
});

after(async () => {
  await browser?.close();
  server?.stop();
});

const settle = (ms) => new Promise((r) => setTimeout(r, ms));

test("firefox: sign in and every page renders", async () => {
  await page.goto(server.url + "/");
  await page.type("input[name=api-key]", server.key);
  await page.click("button[type=submit]");
  await page.waitForSelector("nav#nav a");
  for (const route of ["models", "models/news", "datasets", "training", "keys", "tenants", "usage", "audit", "status"]) {
    await page.goto(`${server.url}/#/${route}`);
    await page.waitForSelector("main h1");
    await settle(1200);
    assert.equal(await page.$(".error"), null, `${route} shows an error: ${await page.$eval(".error", (e) => e.textContent).catch(() => "")}`);
    await page.screenshot({ path: path.join(SCREENSHOTS, `firefox-${route.replace(/\//g, "-")}.png`), fullPage: true });
  }
});

test("firefox: classify and a streamed chat in the playground", async () => {
  await page.goto(`${server.url}/#/playground/classify`);
  await page.waitForSelector("#classify-text");
  await page.type("#classify-text", "The striker scored twice as the club won the cup final in front of a record crowd.");
  await page.click("#panel-classify button[type=submit]");
  await page.waitForSelector(".prediction-label strong", { timeout: 60_000 });
  assert.equal((await page.$eval(".prediction-label strong", (e) => e.textContent)).trim(), "sports");

  await page.goto(`${server.url}/#/playground/chat`);
  await page.waitForSelector("#chat-input");
  await page.type("#chat-input", "Name one colour.");
  await page.click("#panel-chat button[type=submit]");
  await page.waitForSelector('[aria-label="Speed of the last answer"]', { timeout: 120_000 });
  const reply = await page.$$eval(".msg.assistant", (els) => els.at(-1)?.textContent ?? "");
  assert.ok(reply.replace("Model:", "").trim().length > 0, "the assistant replied");
  await page.screenshot({ path: path.join(SCREENSHOTS, "firefox-playground-chat.png"), fullPage: true });
});

test("firefox: no console errors", () => {
  assert.deepEqual(errors, []);
});
