// What the browser tests share: the real aiaas binary on port 0 with a fresh data
// directory, API calls with its admin key, and where screenshots go.

import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const BIN = process.env.AIAAS_BIN ?? path.join(os.homedir(), ".cache/aiaas-target/debug/aiaas");
export const DATA = process.env.AIAAS_TEST_DATA ?? path.join(os.homedir(), ".cache/aiaas-data-cache");
export const SCREENSHOTS = process.env.AIAAS_SCREENSHOTS ?? path.join(here, "../../test-results/screenshots");

/** The newest libonnxruntime.so* the set-up script put under the test data. */
function onnxRuntime() {
  const dir = path.join(DATA, "onnxruntime");
  const libs = fs.readdirSync(dir).filter((f) => f.startsWith("libonnxruntime.so")).sort();
  if (libs.length === 0) throw new Error(`no libonnxruntime.so in ${dir} (run scripts/setup.sh --test)`);
  return path.join(dir, libs[libs.length - 1]);
}

/** Starts `aiaas serve` on a free loopback port; resolves to {url, key, stop()}. */
export async function startServer() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "aiaas-console-"));
  const child = spawn(
    BIN,
    [
      "serve", "--data-dir", path.join(dir, "data"), "--listen", "127.0.0.1:0", "--no-demo",
      "--master-key-file", path.join(dir, "master.key"),
      // Catalogue pulls come from the wheels the set-up script cached (no network).
      "--wheel-dir", path.join(DATA, "wheels"),
      // Uploaded ONNX models run on the libonnxruntime the set-up script fetched.
      "--onnxruntime", onnxRuntime(),
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  const { url, key } = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`aiaas did not start:\n${out}`)), 60_000);
    const on = (chunk) => {
      out += chunk;
      const u = /listening on (http:\/\/[0-9.:]+)/.exec(out);
      const k = /admin key: (aiaas_[0-9a-f]+)/.exec(out);
      if (u && k) {
        clearTimeout(timer);
        resolve({ url: u[1], key: k[1] });
      }
    };
    child.stdout.on("data", on);
    child.stderr.on("data", on);
    child.on("exit", (code) => reject(new Error(`aiaas exited with ${code}:\n${out}`)));
  });
  const stop = () => {
    child.kill("SIGTERM");
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return { url, key, stop };
}

/** A JSON API call; resolves to {status, body}. */
export async function call(base, key, method, p, body) {
  const resp = await fetch(base + p, {
    method,
    headers: { Authorization: `Bearer ${key}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await resp.text();
  return { status: resp.status, body: text ? JSON.parse(text) : undefined };
}

/** The chat model from the test data (as `aiaas pull` would). */
export async function pullChatModel(base, key) {
  const gguf = path.join(DATA, "models/smollm2-135m-instruct.gguf");
  return call(base, key, "POST", "/api/v1/library/pull", { source: gguf, name: "smollm2-135m-instruct", stream: false });
}
