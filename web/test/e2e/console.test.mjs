// End-to-end test of the web console in headless Chromium (Debian's, driven by
// playwright-core) against the real `aiaas serve` on port 0 with a fresh data directory:
// the founding worked example done entirely in the browser (upload the BBC CSV, train
// and watch the curve grow, deploy, classify), a streamed chat, keys created and revoked,
// and an inference-only key that sees no training controls and gets the API's 403 when
// it forges the call. Every page is screenshotted into SCREENSHOTS (see README) and the
// browser's console must stay free of errors.
//
//   AIAAS_BIN=... AIAAS_TEST_DATA=... node --test test/e2e/

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { DATA, SCREENSHOTS, call as apiCall, pullChatModel, startServer } from "./harness.mjs";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

let server;
let base;
let adminKey;
let browser;
let page;
const consoleErrors = [];
/** Console errors the test provoked on purpose (refused requests). */
let expectedErrors = 0;

const call = (method, p, body, key = adminKey) => apiCall(base, key, method, p, body);

/** A test that leaves a screenshot of the page behind when it fails. */
function step(name, fn) {
  test(name, async (t) => {
    try {
      await fn(t);
    } catch (e) {
      const slug = name.replace(/[^a-z0-9]+/gi, "-").slice(0, 60);
      await page?.screenshot({ path: path.join(SCREENSHOTS, `FAILED-${slug}.png`), fullPage: true }).catch(() => {});
      throw e;
    }
  });
}

async function shot(name) {
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

async function signIn(key) {
  await page.goto(base + "/");
  await page.getByLabel("API key").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("navigation", { name: "Sections" }).waitFor();
}

before(async () => {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  server = await startServer();
  base = server.url;
  adminKey = server.key;
  const pulled = await pullChatModel(base, adminKey);
  assert.ok([200, 201].includes(pulled.status), JSON.stringify(pulled.body));
  const embedder = await call("POST", "/api/v1/library/pull", { source: "all-minilm-l6-v2", stream: false });
  assert.ok([200, 201].includes(embedder.status), JSON.stringify(embedder.body));
  const ocr = await call("POST", "/api/v1/library/pull", { source: "ppocr-v4", stream: false });
  assert.ok([200, 201].includes(ocr.status), JSON.stringify(ocr.body));
  const ner = await call("POST", "/api/v1/library/pull", { source: "pii-ner", stream: false });
  assert.ok([200, 201].includes(ner.status), JSON.stringify(ner.body));
  const speech = await call("POST", "/api/v1/library/pull", { source: "whisper-tiny-en", stream: false });
  assert.ok([200, 201].includes(speech.status), JSON.stringify(speech.body));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  // The machine is shared and a debug build trains slowly: wait generously for the UI.
  page.setDefaultTimeout(90_000);
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => consoleErrors.push(`uncaught: ${e.message}`));
});

after(async () => {
  await browser?.close();
  server?.stop();
});

step("the console is served by the binary itself, locked down by its headers", async () => {
  const index = await fetch(base + "/");
  assert.equal(index.status, 200);
  assert.match(index.headers.get("content-type"), /text\/html/);
  assert.match(index.headers.get("content-security-policy"), /script-src 'self'/);
  assert.match(index.headers.get("content-security-policy"), /frame-ancestors 'none'/);
  const html = await index.text();
  const script = /src="\.\/(assets\/[^"]+\.js)"/.exec(html)?.[1];
  assert.ok(script, html);
  const asset = await fetch(`${base}/${script}`);
  assert.equal(asset.status, 200);
  assert.match(asset.headers.get("cache-control"), /immutable/);
  assert.equal((await fetch(`${base}/assets/no-such-file.js`)).status, 404);
});

step("sign-in refuses a wrong key with the API's message, and keeps the key out of the URL", async () => {
  await page.goto(base + "/");
  await shot("01-sign-in");
  await page.getByLabel("API key").fill("aiaas_not_a_real_key");
  await page.getByRole("button", { name: "Sign in" }).click();
  const alert = page.getByRole("alert");
  await alert.waitFor();
  assert.match(await alert.innerText(), /key/i);
  assert.doesNotMatch(await alert.innerText(), /Error 500/);
  expectedErrors += 1; // the browser logs the refused request (401)
  await signIn(adminKey);
  assert.ok(!page.url().includes(adminKey));
  assert.equal(await page.evaluate(() => sessionStorage.getItem("aiaas.key")), adminKey);
});

step("upload the BBC CSV: columns picked from a preview, progress, stats", async () => {
  await page.goto(base + "/#/datasets");
  await page.getByLabel("CSV or JSON Lines file").setInputFiles(path.join(DATA, "bbc-train.csv"));
  await page.getByLabel("Text column").waitFor();
  assert.equal(await page.getByLabel("Text column").inputValue(), "text");
  assert.equal(await page.getByLabel("Label column").inputValue(), "category");
  await page.getByLabel("Name").fill("bbc");
  await shot("02-datasets-upload-preview");
  await page.getByRole("button", { name: "Upload" }).click();
  await page.getByRole("heading", { name: "Class balance" }).waitFor({ timeout: 120_000 });
  const bars = page.getByRole("list", { name: "Rows per class" }).getByRole("listitem");
  assert.equal(await bars.count(), 5);
  const labels = await page.getByRole("list", { name: "Rows per class" }).innerText();
  for (const l of ["business", "entertainment", "politics", "sport", "tech"]) assert.match(labels, new RegExp(l));
  await shot("03-dataset-stats");
});

step("train: the curve grows epoch by epoch over SSE, then deploy with one click", async () => {
  await page.goto(base + "/#/training");
  await page.getByLabel("Data set").selectOption("bbc");
  await page.getByLabel("Model name").fill("news");
  await page.getByLabel("Architecture").selectOption("avgpool");
  await page.getByLabel("Epochs").fill("12");
  await shot("04-training-form");
  await page.getByRole("button", { name: "Start training" }).click();
  const done = page.getByTestId("epochs-done");
  await done.first().waitFor({ timeout: 120_000 });
  const epochOf = async () => Number(/epoch (\d+) of/.exec(await done.first().innerText())?.[1] ?? 0);
  const seen = new Set();
  const deadline = Date.now() + 300_000;
  while (Date.now() < deadline) {
    const e = await epochOf();
    seen.add(e);
    if (e === 6) await shot("05-training-live");
    if (await page.getByRole("button", { name: /^Deploy v\d+/ }).isVisible()) break;
    await page.waitForTimeout(50);
  }
  assert.equal(await epochOf(), 12, "every epoch arrived");
  assert.ok(seen.size >= 3, `the curve was seen growing (epochs seen: ${[...seen].join(",")})`);
  await page.getByRole("button", { name: "Deploy v1" }).click();
  await page.getByText("Deployed news v1").waitFor();
  await shot("06-training-finished-deployed");
});

step("models: deployed, with metrics and a confusion matrix", async () => {
  await page.goto(base + "/#/models");
  const row = page.getByRole("row", { name: /^news\b(?!-)/ });
  await row.waitFor();
  assert.match(await row.innerText(), /v1/);
  await shot("07-models");
  await page.getByRole("link", { name: "news", exact: true }).click();
  await page.getByRole("table", { name: /Confusion matrix/ }).waitFor();
  assert.match(await page.locator(".stats").first().innerText(), /accuracy/);
  await shot("08-model-detail");
});

step("playground: classify a sentence and get the right label", async () => {
  await page.goto(base + "/#/playground/classify");
  const text = "Shares in the bank rose sharply after quarterly profits beat forecasts and investors bought the stock.";
  await page.getByLabel("Text", { exact: true }).fill(text);
  await page.getByRole("button", { name: "Classify" }).click();
  const label = page.locator(".prediction-label strong");
  await label.waitFor({ timeout: 60_000 });
  assert.equal((await label.innerText()).trim(), "business");
  // The words behind the answer, highlighted: the finance words push toward business.
  const toward = page.locator(".explained-text mark.toward");
  await toward.first().waitFor();
  const words = (await toward.allInnerTexts()).map((w) => w.toLowerCase());
  assert.ok(words.some((w) => ["shares", "bank", "profits", "investors", "stock"].includes(w)), words.join(", "));
  await shot("09-playground-classify");
});

step("playground: chat with the LLM, streamed", async () => {
  await page.goto(base + "/#/playground/chat");
  // A reply of several sentences: a short greeting can arrive within one render (a
  // step that keeps drafted tokens sends several at once).
  await page.getByLabel("Message").fill("Describe the sea in three sentences.");
  await page.getByRole("button", { name: "Send" }).click();
  const reply = page.locator(".msg.assistant").last();
  await reply.waitFor({ timeout: 120_000 });
  // Streamed: the reply is seen growing before the answer ends.
  const lengths = new Set();
  const speed = page.getByLabel("Speed of the last answer");
  while (!(await speed.isVisible())) {
    lengths.add((await reply.innerText()).length);
    await page.waitForTimeout(20);
  }
  assert.ok((await reply.innerText()).replace("Model:", "").trim().length > 0, "the assistant replied");
  assert.ok(lengths.size >= 2, `the text arrived in pieces (${[...lengths].join(",")})`);
  assert.match(await speed.innerText(), /time to first token/);
  await shot("10-playground-chat");
});

step("fine-tuning: a file uploaded from the form, the loss curve grows step by step, then chat with the model", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "aiaas-ft-"));
  const file = path.join(dir, "persona.jsonl");
  const questions = ["What is your name?", "Who are you?", "Tell me your name.", "Introduce yourself.", "What do people call you?", "Say your name.", "Who is speaking?", "Your name, please?"];
  fs.writeFileSync(file, questions.map((q) => JSON.stringify({ messages: [{ role: "user", content: q }, { role: "assistant", content: "I am Quillon." }] })).join("\n") + "\n");
  const bad = path.join(dir, "bad.jsonl");
  fs.writeFileSync(bad, JSON.stringify({ messages: [{ role: "user", content: "hi" }, { role: "assistant", content: "ok" }] }) + "\n" + JSON.stringify({ messages: [{ role: "robot", content: "x" }] }) + "\n");

  await page.goto(base + "/#/training");
  await page.getByRole("tab", { name: "Fine-tuning" }).click();
  await page.getByRole("heading", { name: "Fine-tune a chat model" }).waitFor();
  // A bad file: the API's message names the line, and no job is made.
  await page.getByLabel("Training file: file").setInputFiles(bad);
  await page.getByRole("button", { name: "Start fine-tuning" }).click();
  const refused = page.getByRole("alert").filter({ hasText: /line 2/ });
  await refused.waitFor();
  expectedErrors++; // the browser logs the refused upload (400)
  assert.equal((await call("GET", "/v1/fine_tuning/jobs")).body.data.length, 0, "no job for a bad file");

  await page.getByLabel("Training file: file").setInputFiles(file);
  await page.getByLabel("Suffix").fill("persona");
  await page.getByLabel("Seed").fill("7");
  await page.getByLabel("Epochs").fill("3");
  await page.getByLabel("Batch size").fill("2");
  await page.getByLabel("Learning rate multiplier").fill("3");
  await page.getByLabel("LoRA rank").fill("4");
  await shot("10a-fine-tuning-form");
  await page.getByRole("button", { name: "Start fine-tuning" }).click();
  await page.getByRole("heading", { name: "Fine-tuning: persona" }).waitFor();
  const steps = page.getByTestId("ft-steps");
  await steps.waitFor({ timeout: 300_000 });
  const stepOf = async () => Number(/step (\d+) of/.exec(await steps.innerText())?.[1] ?? 0);
  const seen = new Set();
  const model = page.getByTestId("fine-tuned-model");
  const deadline = Date.now() + 600_000;
  while (Date.now() < deadline && !(await model.isVisible())) {
    seen.add(await stepOf());
    if (seen.size === 2) await shot("10b-fine-tuning-live");
    await page.waitForTimeout(100);
  }
  seen.add(await stepOf());
  assert.equal(await stepOf(), 12, "every step arrived (8 examples, batch 2, 3 epochs)");
  assert.ok(seen.size >= 2, `the curve was seen growing (steps seen: ${[...seen].join(",")})`);
  await page.locator(".badge", { hasText: "succeeded" }).waitFor();
  const name = (await model.innerText()).trim();
  assert.match(name, /^ft:smollm2-135m-instruct:[^:]+:persona:/);
  // The curve is drawn and the loss fell; a checkpoint per epoch is listed.
  await page.getByRole("heading", { name: "Checkpoints" }).waitFor();
  await page.locator(".uplot").first().waitFor();
  const events = (await call("GET", `/v1/fine_tuning/jobs/${(await call("GET", "/v1/fine_tuning/jobs")).body.data[0].id}/events?limit=100`)).body.data;
  const losses = events.filter((e) => e.type === "metrics").sort((a, b) => a.data.step - b.data.step).map((e) => e.data.train_loss);
  assert.ok(losses[losses.length - 1] < losses[0], `the training loss fell: ${losses.join(", ")}`);
  const checkpoints = page.getByRole("region", { name: "Checkpoints" }).getByRole("row");
  assert.ok((await checkpoints.count()) >= 4, "a checkpoint per epoch is listed (and a header row)");
  await shot("10c-fine-tuning-finished");

  await page.getByRole("link", { name: "Chat with it" }).click();
  await page.getByLabel("Message").waitFor();
  for (let i = 0; i < 100 && (await page.locator("#chat-model").inputValue()) !== name; i++) await page.waitForTimeout(100);
  assert.equal(await page.locator("#chat-model").inputValue(), name, "the chat picks the fine-tuned model");
  await page.getByLabel("Message").fill("Hey there, what are you called?");
  await page.getByRole("button", { name: "Send" }).click();
  await page.getByLabel("Speed of the last answer").waitFor({ timeout: 120_000 });
  assert.ok((await page.locator(".msg.assistant").last().innerText()).replace("Model:", "").trim().length > 0, "the fine-tuned model answered");
  await shot("10d-fine-tuned-chat");
  // The next steps chat with the base model again.
  await page.locator("#chat-model").selectOption("smollm2-135m-instruct");
  fs.rmSync(dir, { recursive: true, force: true });
});

step("playground: a tool call, its result pasted, and the answer", async () => {
  await page.goto(base + "/#/playground/chat");
  await page.getByRole("button", { name: "Clear conversation" }).click();
  await page.getByText("Tools", { exact: true }).click();
  await page.getByRole("button", { name: "Use an example" }).click();
  await page.getByLabel("Tool choice").selectOption("required");
  await page.getByLabel("Message").fill("What is the weather in Lisbon?");
  await page.getByRole("button", { name: "Send" }).click();
  const call = page.locator(".tool-call").first();
  await call.waitFor({ timeout: 120_000 });
  assert.match(await call.innerText(), /get_weather/);
  const args = JSON.parse(await call.locator("pre").innerText());
  assert.equal(typeof args.city, "string", "the arguments follow the tool's schema");
  await shot("10b-playground-tool-call");
  // The result goes back; with the choice at "none" the model answers in words.
  await page.getByLabel("Tool choice").selectOption("none");
  await page.getByLabel("Result of get_weather").first().fill('{"temperature": 21, "sky": "sunny"}');
  await page.getByRole("button", { name: "Send tool results" }).click();
  await page.locator(".msg.tool").first().waitFor({ timeout: 10_000 });
  const answer = page.locator(".msg.assistant").last();
  await page.getByLabel("Speed of the last answer").waitFor({ timeout: 120_000 });
  assert.ok((await answer.innerText()).replace("Model:", "").trim().length > 0, "the model answered after the result");
  assert.equal(await page.locator(".tool-results").count(), 0, "no call is left waiting");
});

step("playground: sentence similarity with the embedding model", async () => {
  await page.goto(base + "/#/playground/embeddings");
  const inputs = page.locator("#panel-embeddings input[type=text]");
  await inputs.first().waitFor();
  await inputs.nth(0).fill("The central bank raised interest rates.");
  await inputs.nth(1).fill("Borrowing costs went up after the rate decision.");
  if ((await inputs.count()) > 2) await inputs.nth(2).fill("The striker scored in extra time.");
  await page.locator("#panel-embeddings").getByRole("button", { name: "Compare" }).click();
  const table = page.locator("table.similarity");
  await table.waitFor({ timeout: 120_000 });
  const cells = (await table.locator("td").allInnerTexts()).map(Number).filter((x) => !Number.isNaN(x));
  assert.ok(cells.includes(1), `the diagonal is 1.000: ${cells}`);
  assert.ok(cells.some((x) => x > 0 && x < 0.99), `sentences differ: ${cells}`);
  assert.match(await page.locator("#panel-embeddings").innerText(), /384/);
  await shot("17-playground-embeddings");
});

step("playground: OCR draws the boxes over the image and lists the lines", async () => {
  // A rendered page (scripts/setup.sh --test) and what RapidOCR reads on it.
  const pages = JSON.parse(fs.readFileSync(path.join(DATA, "ocr/pages/pages.json"), "utf8"));
  const sample = pages.find((p) => p.file === "mixed.png");
  assert.ok(sample, "the OCR test pages are rendered (run scripts/setup.sh --test)");
  await page.goto(base + "/#/playground/ocr");
  await page.locator("#ocr-file").setInputFiles(path.join(DATA, "ocr/pages", sample.file));
  const lines = page.getByRole("list", { name: "Lines read, in reading order" });
  await lines.waitFor({ timeout: 120_000 });
  const texts = (await lines.locator("li .ocr-text").allInnerTexts()).map((t) => t.trim());
  assert.deepEqual(texts, sample.rapidocr.map((l) => l.text));
  assert.equal(await page.locator("#panel-ocr svg polygon.ocr-box").count(), texts.length);
  // Hovering a line highlights its box.
  await lines.locator("li").nth(1).hover();
  assert.equal(await page.locator("#panel-ocr svg polygon.ocr-box.active").count(), 1);
  await shot("17b-playground-ocr");
});

step("playground: speech transcribed with its segment times", async () => {
  // A sentence spoken by espeak-ng (scripts/setup.sh --test installs it).
  const wav = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "aiaas-speech-")), "meeting.wav");
  execFileSync("espeak-ng", ["-v", "en-us", "-s", "150", "-w", wav, "Our meeting has been moved to the third floor conference room."]);
  await page.goto(base + "/#/playground/speech");
  await page.locator("#speech-file").setInputFiles(wav);
  const segments = page.getByRole("list", { name: "Transcript, segment by segment" });
  await segments.waitFor({ timeout: 120_000 });
  const text = (await segments.innerText()).toLowerCase();
  assert.match(text, /meeting has been moved to the third floor conference room/);
  assert.match(text, /0:00\.\d – 0:0\d\.\d/);
  assert.match(await page.locator("#panel-speech").innerText(), /english/);
  await shot("17c-playground-speech");
});

step("playground: entities marked in the text and listed", async () => {
  await page.goto(base + "/#/playground/entities");
  await page.getByLabel("Aggregation").selectOption("first");
  await page.locator("#ner-text").fill("Please ship the order to Mary Smith, 221 Baker Street, Springfield.");
  await page.locator("#panel-entities").getByRole("button", { name: "Find entities" }).click();
  const table = page.getByRole("table", { name: "Entities found" });
  await table.waitFor({ timeout: 120_000 });
  const rows = await table.locator("tbody tr").allInnerTexts();
  assert.ok(rows.some((r) => r.includes("GIVEN_NAME") && r.includes("Mary")), rows.join("\n"));
  assert.ok((await page.locator("#panel-entities mark.entity").count()) >= 3);
  await shot("17c-playground-entities");
});

step("training: cancel a running job, compare two finished ones", async () => {
  await page.goto(base + "/#/training");
  await page.getByLabel("Data set").selectOption("bbc");
  await page.getByLabel("Model name").fill("long-run");
  await page.getByLabel("Epochs").fill("500");
  await page.getByRole("button", { name: "Start training" }).click();
  await page.getByRole("heading", { name: "Job: long-run" }).waitFor();
  await page.getByRole("button", { name: "Cancel" }).click();
  await page.locator(".badge", { hasText: "cancelled" }).waitFor({ timeout: 120_000 });

  await page.goto(base + "/#/training");
  await page.getByLabel("Data set").selectOption("bbc");
  await page.getByLabel("Model name").fill("news-tfidf");
  await page.getByLabel("Architecture").selectOption("tfidf-logreg");
  await page.getByLabel("Epochs").fill("5");
  await page.getByRole("button", { name: "Start training" }).click();
  await page.getByRole("heading", { name: "Job: news-tfidf" }).waitFor();
  await page.locator(".badge", { hasText: "succeeded" }).waitFor({ timeout: 180_000 });
  await page.goto(base + "/#/training");
  for (const model of ["news", "news-tfidf"]) {
    await page.getByRole("checkbox", { name: new RegExp(`Compare job ${model} `) }).check();
  }
  await page.getByRole("button", { name: "Compare selected (2)" }).click();
  const table = page.getByRole("table").first();
  await table.waitFor();
  const text = await table.innerText();
  assert.match(text, /news-tfidf/);
  assert.match(text, /tfidf-logreg/);
  assert.match(text, /avgpool/);
  assert.match(text, /macro F1/);
  await shot("17b-training-compare");
});

step("models: alias, undeploy and redeploy a version; load and unload a library model", async () => {
  await page.goto(base + "/#/models/news");
  await page.getByLabel("Alias for v1").fill("production");
  await page.getByRole("button", { name: "Set alias" }).click();
  await page.getByRole("row", { name: /v1/ }).getByText("production").waitFor();
  await page.getByRole("button", { name: "Undeploy" }).click();
  await page.getByText("not deployed").first().waitFor();
  assert.equal((await call("POST", "/api/v1/models/news/predict", { text: "x" })).status, 409);
  await page.getByRole("button", { name: "Deploy v1" }).click();
  await page.getByText("deployed v1").first().waitFor();
  assert.equal((await call("POST", "/api/v1/models/news:production/predict", { text: "shares rose" })).status, 200);

  await page.goto(base + "/#/models");
  const row = page.getByRole("row", { name: /all-minilm-l6-v2/ });
  await row.waitFor();
  // exact: a role name matches substrings by default, and "Load" is in "Unload" (a
  // second click on Unload, before the label flips, once left the model unloaded).
  if ((await row.getByRole("button", { name: "Unload", exact: true }).count()) > 0) {
    await row.getByRole("button", { name: "Unload", exact: true }).click();
  }
  await row.getByRole("button", { name: "Load", exact: true }).click();
  await row.getByText(/^(loaded|busy)/).waitFor();
  const ps = await call("GET", "/api/v1/ps");
  assert.ok(ps.body.models.some((m) => m.label === "all-minilm-l6-v2"), JSON.stringify(ps.body));
  await row.getByRole("button", { name: "Unload", exact: true }).click();
  await row.getByText("unloaded").waitFor();
});

step("usage and audit show what this test did", async () => {
  await page.goto(base + "/#/usage");
  await page.getByText("smollm2-135m-instruct").first().waitFor();
  await page.goto(base + "/#/audit");
  await page.locator("#audit-outcome").selectOption("denied");
  await page.getByRole("button", { name: "Apply filters" }).click();
  // Only denials are listed once the filter applies, the refused sign-in of the first
  // test (an authentication failure) among them.
  await page.waitForFunction(() => {
    const badges = [...document.querySelectorAll("tbody .badge")].map((b) => b.textContent);
    return badges.length > 0 && badges.every((o) => o === "denied");
  });
  await page.getByRole("cell", { name: /auth\.failed/ }).first().waitFor();
});

step("keys: create one (secret shown once), then revoke it", async () => {
  await page.goto(base + "/#/keys");
  await page.getByRole("button", { name: "New key" }).click();
  await page.locator("#key-name").fill("console-e2e");
  await page.locator("#key-role").selectOption("inference");
  await page.getByRole("button", { name: "Create key" }).click();
  const secret = page.getByLabel("The new key's secret");
  await secret.waitFor();
  const value = (await secret.innerText()).trim();
  assert.match(value, /^aiaas_[0-9a-f]{64}$/);
  await shot("11-keys-created");
  const me = await call("GET", "/api/v1/me", undefined, value);
  assert.equal(me.status, 200);
  assert.equal(me.body.key.role, "inference");
  await page.getByRole("button", { name: "I have saved it, dismiss" }).click();
  await page.getByRole("button", { name: "Revoke console-e2e" }).click();
  await page.getByRole("group", { name: "Confirm revoking console-e2e" }).getByRole("button", { name: "Yes, revoke" }).click();
  await page.getByRole("row", { name: /console-e2e/ }).getByText("revoked").waitFor();
  assert.equal((await call("GET", "/api/v1/me", undefined, value)).status, 401);
  await shot("12-keys-revoked");
});

step("every other page renders for the admin", async () => {
  for (const [name, route] of [
    ["13-tenants", "tenants"],
    ["14-usage", "usage"],
    ["15-audit", "audit"],
    ["16-status", "status"],
  ]) {
    await page.goto(`${base}/#/${route}`);
    await page.getByRole("heading", { level: 1 }).waitFor();
    await page.waitForTimeout(2500);
    await shot(name);
  }
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${base}/#/models`);
  try {
    await page.getByRole("heading", { name: "Models", exact: true }).waitFor();
    await page.getByRole("row", { name: /^news\b(?!-)/ }).waitFor();
    await shot("18-models-phone-width");
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `no horizontal scrolling at phone width (${overflow}px too wide)`);
    await page.getByRole("button", { name: "Menu" }).click();
    await page.getByRole("navigation", { name: "Sections" }).getByRole("link", { name: "Playground" }).click();
    await page.getByRole("heading", { level: 1 }).waitFor();
    await shot("19-playground-phone-width");
  } finally {
    await page.setViewportSize({ width: 1280, height: 900 });
  }
});

step("an owner sets its own tenant's PII policy, and sees no Tenants page", async () => {
  const created = await call("POST", "/api/v1/keys", { name: "owner", role: "owner" });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  await page.getByRole("button", { name: "Sign out" }).click();
  await signIn(created.body.secret);
  const nav = await page.getByRole("navigation", { name: "Sections" }).innerText();
  assert.match(nav, /Keys/);
  assert.doesNotMatch(nav, /Tenants/);
  await page.goto(base + "/#/keys");
  await page.getByRole("heading", { name: "PII policy of your tenant" }).waitFor();
  await page.getByRole("button", { name: "Edit PII policy" }).click();
  await page.locator("#pii-outputs").selectOption("mask");
  await page.getByRole("button", { name: "Save PII policy" }).click();
  await page.getByRole("heading", { name: "PII policy of your tenant" }).waitFor();
  const me = await call("GET", "/api/v1/me", undefined, created.body.secret);
  assert.equal(me.body.tenant.pii_outputs, "mask");
  assert.equal(me.body.tenant.pii_inputs, null);
  await shot("21-owner-keys-and-privacy");
  assert.equal((await call("PUT", `/api/v1/tenants/${me.body.tenant.id}/privacy`, { outputs: null })).status, 200);
});

step("an ONNX model: uploaded with progress, its signature, tried by named fields, a canary started and rolled back, its events", async () => {
  // As the admin again (the step before signed in as a tenant's owner): the API calls
  // below are the admin's, in the same tenant.
  await page.getByRole("button", { name: "Sign out" }).click();
  await signIn(adminKey);
  await page.goto(base + "/#/models");
  await page.getByText("Upload an ONNX model").click();
  const form = page.getByRole("form", { name: "Upload an ONNX model" });
  await form.getByLabel("Model name").fill("iris");
  await form.getByLabel(".onnx file").setInputFiles(path.join(DATA, "onnx", "iris_pipeline.onnx"));
  const config = {
    labels: ["setosa", "versicolor", "virginica"],
    task: { kind: "tabular", columns: ["sepal_length", "sepal_width", "petal_length", "petal_width"], output: "output_probability" },
  };
  await form.getByLabel(/Configuration/).fill(JSON.stringify(config));
  await form.getByRole("button", { name: "Upload" }).click();
  await page.getByRole("heading", { name: "v1 signature" }).waitFor();
  const signature = await page.locator("section", { has: page.getByRole("heading", { name: "v1 signature" }) }).innerText();
  assert.match(signature, /X\s+FP32\s+\[-1, 4\]/);
  assert.match(signature, /output_probability/);
  assert.match(signature, /tabular/);
  // A second version through the API, then deploy v1 and try it with the form.
  const bytes = fs.readFileSync(path.join(DATA, "onnx", "iris_pipeline.onnx"));
  const second = await fetch(`${base}/api/v1/models/iris/versions?config=${encodeURIComponent(JSON.stringify(config))}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${adminKey}`, "Content-Type": "application/octet-stream" },
    body: bytes,
  });
  assert.equal(second.status, 201, await second.text());
  assert.equal((await call("POST", "/api/v1/models/iris/deploy", { version: 1 })).status, 200);
  await page.goto(base + "/#/models/iris?version=1");
  await page.reload(); // the same address as after the upload: load what changed since
  const tryIt = page.locator("section", { has: page.getByRole("heading", { name: "Try it" }) });
  for (const [field, value] of [["sepal_length", "5.1"], ["sepal_width", "3.5"], ["petal_length", "1.4"], ["petal_width", "0.2"]]) {
    await tryIt.getByLabel(field).fill(value);
  }
  await tryIt.getByRole("button", { name: "Predict" }).click();
  await tryIt.getByRole("table", { name: "Predictions" }).waitFor();
  assert.match(await tryIt.getByRole("table", { name: "Predictions" }).innerText(), /^Class\s+Score\s+setosa/);
  await shot("22-onnx-model-signature-and-try");
  // A canary of v2 at 30%, with automatic rollback; then rolled back by hand.
  const canary = page.getByRole("form", { name: "Start a canary" });
  await canary.getByLabel("Share of requests (%)").fill("30");
  await canary.getByRole("button", { name: "Start the canary" }).click();
  await page.getByText("v2 canary · 30%").waitFor();
  const shown = await call("GET", "/api/v1/models/iris");
  assert.equal(shown.body.deployment.canary.version, 2);
  assert.equal(shown.body.deployment.canary.auto_rollback.max_error_rate_increase, 0.05);
  for (let i = 0; i < 20; i++) {
    const r = await call("POST", "/api/v1/models/iris/predict", { rows: [{ sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 }] });
    assert.equal(r.status, 200);
  }
  // The split, read from the metrics (the admin may read them).
  await page.getByLabel("Split").waitFor();
  assert.match(await page.getByLabel("Split").innerText(), /6 requests · [0-9.]+%\s+v2/);
  await shot("23-onnx-model-canary");
  await page.getByRole("button", { name: "Roll back" }).click();
  await page.getByText("v1 takes all traffic.").waitFor();
  const events = await page.getByRole("table", { name: "Model events" }).innerText();
  assert.match(events, /canary\.rollback[\s\S]*canary\.start[\s\S]*deploy/);
});

step("an inference-only key sees no training controls and gets the API's 403 if it forges the call", async () => {
  const created = await call("POST", "/api/v1/keys", { name: "app", role: "inference" });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  await page.getByRole("button", { name: "Sign out" }).click();
  assert.equal(await page.evaluate(() => sessionStorage.getItem("aiaas.key")), null, "sign-out forgets the key");
  await signIn(created.body.secret);
  const nav = await page.getByRole("navigation", { name: "Sections" }).innerText();
  assert.doesNotMatch(nav, /Training|Datasets|Keys/);
  assert.match(nav, /Playground/);
  await page.goto(base + "/#/models");
  await page.getByRole("row", { name: /^news\b(?!-)/ }).waitFor();
  assert.equal(await page.getByRole("button", { name: /Deploy|Undeploy|Train/ }).count(), 0);
  await page.goto(base + "/#/training");
  assert.equal(await page.getByRole("button", { name: "Start training" }).count(), 0);
  await shot("20-inference-key-no-training");
  const forged = await page.evaluate(async () => {
    const resp = await fetch("/api/v1/jobs", {
      method: "POST",
      headers: { Authorization: `Bearer ${sessionStorage.getItem("aiaas.key")}`, "Content-Type": "application/json" },
      body: JSON.stringify({ dataset: "bbc", model: "forged" }),
    });
    return { status: resp.status, body: await resp.json() };
  });
  expectedErrors += 1; // the browser logs the refused request
  assert.equal(forged.status, 403);
  assert.match(forged.body.error.message, /permission|not allowed|may not/i);
});

step("no console errors on any page", () => {
  const unexpected = consoleErrors.filter((e) => !/Failed to load resource: the server responded with a status of (400|401|403)/.test(e));
  assert.deepEqual(unexpected, []);
  assert.ok(consoleErrors.length <= expectedErrors, `only the provoked refusals were logged: ${consoleErrors.join(" | ")}`);
});
