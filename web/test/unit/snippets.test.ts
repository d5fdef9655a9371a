// The Playground's "Show code" snippets: quoted right for the shell and for Python, and
// making the same call the page makes. Where bash and python3 are installed the snippets
// are really run (curl and the Python clients replaced by recorders).

import { afterAll, describe, expect, it } from "vitest";
import {
  chatCurl,
  chatPython,
  chatRequest,
  chatSnippets,
  classifyCurl,
  classifyPython,
  classifySnippets,
  embeddingsCurl,
  embeddingsPython,
  embeddingsRequest,
  embeddingsSnippets,
  nerCurl,
  nerPython,
  nerSnippets,
  normalBase,
  ocrCurl,
  ocrPython,
  ocrSnippets,
  speechCurl,
  speechPython,
  speechSnippets,
  predictPath,
  pyString,
  pyValue,
  shellQuote,
  type ChatMessage,
} from "../../src/snippets";
import { cosine, generationStats, mostSimilarPair, similarityMatrix } from "../../src/pages/Playground";

const BASE = "http://127.0.0.1:18557";
const NASTY = [
  "plain",
  "",
  "it's a 'quoted' \"string\"",
  "back\\slash \\n not a newline, \\' \\\"",
  "two\nlines\r\nand a\ttab",
  "unicode: héllo wörld 🙂 日本語 — “curly” ‘quotes’",
  "shell: $HOME `id` $(touch /tmp/pwned) ${X:-y} !! ; | & > < * ?",
  "control: \u0000 \u0007 \u001b[31m \u007f \u0085 \u2028 \u2029 \ufeff",
  "'''\"\"\"",
  "python: {x} {{y}} %s f\"{os.system('id')}\"",
  "lone surrogate: \ud800 end",
];

// ------------------------------------------------------------------ helpers

// Node's modules, loaded by name: the console's tsconfig has browser types only.
const nodeModule = (name: string): Promise<any> => import(/* @vite-ignore */ name);
const { spawnSync } = (await nodeModule("node:child_process")) as {
  spawnSync(
    cmd: string,
    args: string[],
    opts: { encoding: "utf8"; input?: string; env?: Record<string, string> },
  ): { status: number | null; stdout: string; stderr: string };
};
const { mkdtempSync, readFileSync, rmSync, writeFileSync } = (await nodeModule("node:fs")) as {
  mkdtempSync(prefix: string): string;
  readFileSync(path: string, encoding: "utf8"): string;
  rmSync(path: string, opts: { recursive: boolean; force: boolean }): void;
  writeFileSync(path: string, data: string, encoding?: "utf8"): void;
};
const { tmpdir } = (await nodeModule("node:os")) as { tmpdir(): string };
const { join } = (await nodeModule("node:path")) as { join(...parts: string[]): string };
const PATH: string = (globalThis as any).process?.env?.PATH ?? "/usr/bin:/bin";

/**
 * Split a POSIX shell command line into words, the way sh does for what the snippets
 * use: single quotes, double quotes with $VAR expansion, backslash-newline, comments.
 */
function shellWords(src: string, env: Record<string, string> = {}): string[] {
  const words: string[] = [];
  let word: string | null = null;
  let i = 0;
  const expand = (): string => {
    const m = /^\$([A-Za-z_][A-Za-z0-9_]*)/.exec(src.slice(i));
    if (!m) {
      i++;
      return "$";
    }
    i += m[0].length;
    return env[m[1]] ?? "";
  };
  while (i < src.length) {
    const c = src[i];
    if (c === "\\" && src[i + 1] === "\n") {
      i += 2;
    } else if (c === " " || c === "\t" || c === "\n") {
      if (word !== null) words.push(word);
      word = null;
      i++;
    } else if (c === "#" && word === null) {
      while (i < src.length && src[i] !== "\n") i++;
    } else if (c === "'") {
      const end = src.indexOf("'", i + 1);
      if (end < 0) throw new Error("unterminated single quote");
      word = (word ?? "") + src.slice(i + 1, end);
      i = end + 1;
    } else if (c === '"') {
      word = word ?? "";
      i++;
      while (src[i] !== '"') {
        if (i >= src.length) throw new Error("unterminated double quote");
        if (src[i] === "\\" && '$`"\\\n'.includes(src[i + 1])) {
          word += src[i + 1];
          i += 2;
        } else if (src[i] === "$") {
          word += expand();
        } else if (src[i] === "`") {
          throw new Error("command substitution in a snippet");
        } else {
          word += src[i++];
        }
      }
      i++;
    } else if (c === "\\") {
      word = (word ?? "") + src[i + 1];
      i += 2;
    } else if (c === "$") {
      word = (word ?? "") + expand();
    } else if ("`;|&<>()".includes(c)) {
      throw new Error(`unquoted shell metacharacter ${c} at ${i}`);
    } else {
      word = (word ?? "") + c;
      i++;
    }
  }
  if (word !== null) words.push(word);
  return words;
}

function has(cmd: string, arg: string): boolean {
  return spawnSync(cmd, [arg], { encoding: "utf8" }).status === 0;
}
const HAVE_BASH = has("bash", "--version");
const HAVE_PYTHON = has("python3", "--version");
/** Tests that start bash or python3 per case: generous on a loaded machine. */
const SLOW = 60_000;

/** Run a curl snippet in bash with `curl` replaced by a function printing its arguments. */
function runCurl(snippet: string): string[] {
  const script = `set -eu\ncurl() { for a in "$@"; do printf '%s\\0' "$a"; done; }\n${snippet}`;
  const r = spawnSync("bash", ["-c", script], {
    encoding: "utf8",
    env: { PATH: PATH, AIAAS_API_KEY: "sk-test-123", LC_ALL: "C.UTF-8" },
  });
  if (r.status !== 0) throw new Error(`bash failed: ${r.stderr}`);
  return r.stdout.split("\0").slice(0, -1);
}

const work = mkdtempSync(join(tmpdir(), "aiaas-snippets-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

// Recorders standing in for the `openai` and `requests` packages.
writeFileSync(
  join(work, "_record.py"),
  `import json, os
def record(kind, data):
    with open(os.environ["RECORD"], "a", encoding="ascii") as f:
        f.write(json.dumps({"kind": kind, "data": data}, ensure_ascii=True) + "\\n")
class Obj:
    def __init__(self, **kw):
        self.__dict__.update(kw)
`,
);
writeFileSync(
  join(work, "openai.py"),
  `from _record import record, Obj
class _Completions:
    def create(self, **kw):
        record("chat", kw)
        calls = [Obj(function=Obj(name="get_weather", arguments='{"city": "Oslo"}'))] if kw.get("tools") else None
        return iter([
            Obj(choices=[Obj(delta=Obj(content="Hel", tool_calls=None))], usage=None),
            Obj(choices=[Obj(delta=Obj(content="lo", tool_calls=None))], usage=None),
            Obj(choices=[Obj(delta=Obj(content=None, tool_calls=calls))], usage=None),
            Obj(choices=[], usage=Obj(completion_tokens=2)),
        ])
class _Chat:
    completions = _Completions()
class _Embeddings:
    def create(self, **kw):
        record("embeddings", kw)
        n = len(kw["input"])
        return Obj(data=[Obj(index=i, embedding=[1.0, float(i), 0.5]) for i in reversed(range(n))])
class OpenAI:
    def __init__(self, base_url, api_key):
        record("client", {"base_url": base_url, "api_key": api_key})
        self.chat = _Chat()
        self.embeddings = _Embeddings()
`,
);
writeFileSync(
  join(work, "requests.py"),
  `from _record import record
class _Resp:
    def __init__(self, body):
        self.body = body or {}
    def raise_for_status(self):
        pass
    def json(self):
        if "texts" in self.body and "aggregation" in self.body:
            return {"predictions": [{"entities": [
                {"label": "GIVEN_NAME", "text": "Mary", "start": 3, "end": 7, "score": 0.98}]}]}
        if "images" in self.body:
            return {"predictions": [{"text": "Hello world", "lines": [
                {"text": "Hello world", "confidence": 0.97, "box": [[1, 2], [30, 2], [30, 12], [1, 12]]}]}]}
        return {"predictions": [{"label": "a", "confidence": 0.9, "probabilities": {"a": 0.9, "b": 0.1}}]}
def post(url, headers=None, json=None, timeout=None):
    record("post", {"url": url, "headers": headers, "json": json})
    return _Resp(json)
`,
);

let runs = 0;
/** Run a Python snippet against the recorders; returns what they recorded and stdout. */
function runPython(snippet: string): { calls: { kind: string; data: any }[]; stdout: string } {
  const n = runs++;
  const file = join(work, `snippet${n}.py`);
  const record = join(work, `record${n}.jsonl`);
  writeFileSync(file, snippet, "utf8");
  writeFileSync(record, "");
  const r = spawnSync("python3", ["-I", "-c", `import sys; sys.path.insert(0, ${JSON.stringify(work)}); exec(compile(open(${JSON.stringify(file)}, encoding="utf-8").read(), "snippet", "exec"))`], {
    encoding: "utf8",
    env: { PATH: PATH, AIAAS_API_KEY: "sk-test-123", RECORD: record, PYTHONIOENCODING: "utf-8" },
  });
  if (r.status !== 0) throw new Error(`python failed: ${r.stderr}\n---\n${snippet}`);
  const calls = readFileSync(record, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l: string) => JSON.parse(l));
  return { calls, stdout: r.stdout };
}

/** What Python makes of a string literal. */
function pythonEval(expr: string): unknown {
  const r = spawnSync("python3", ["-I", "-c", "import ast, json, sys; print(json.dumps(ast.literal_eval(sys.stdin.read()), ensure_ascii=True))"], {
    input: expr,
    encoding: "utf8",
    env: { PATH: PATH, PYTHONIOENCODING: "utf-8" },
  });
  if (r.status !== 0) throw new Error(`python failed on ${expr}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

// ------------------------------------------------------------------ quoting

describe("shellQuote", () => {
  it("wraps in single quotes and writes a quote as '\\''", () => {
    expect(shellQuote("abc")).toBe("'abc'");
    expect(shellQuote("")).toBe("''");
    expect(shellQuote("it's")).toBe("'it'\\''s'");
  });

  it.each(NASTY)("round-trips %j through the shell grammar", (s) => {
    expect(shellWords(`x ${shellQuote(s)}`)).toEqual(["x", s]);
  });

  it.skipIf(!HAVE_BASH)("round-trips every test string through bash itself", () => {
    const safe = NASTY.filter((s) => !s.includes("\u0000") && !s.includes("\ud800"));
    const script = safe.map((s) => `printf '%s\\0' ${shellQuote(s)}`).join("\n");
    const r = spawnSync("bash", ["-c", script], { encoding: "utf8", env: { LC_ALL: "C.UTF-8" } });
    expect(r.status).toBe(0);
    expect(r.stdout.split("\0").slice(0, -1)).toEqual(safe);
  }, SLOW);
});

describe("pyString and pyValue", () => {
  it("escapes quotes, backslashes and control characters; keeps printable unicode", () => {
    expect(pyString('a"b')).toBe('"a\\"b"');
    expect(pyString("a\\b")).toBe('"a\\\\b"');
    expect(pyString("a\nb")).toBe('"a\\nb"');
    expect(pyString("\u0000\u001b")).toBe('"\\x00\\x1b"');
    expect(pyString("\u2028")).toBe('"\\u2028"');
    expect(pyString("héllo 🙂 日本")).toBe('"héllo 🙂 日本"');
    expect(pyString("it's")).toBe(`"it's"`);
    for (const s of NASTY) expect(pyString(s)).not.toMatch(/[\n\r\u2028\u2029]/);
  });

  it("writes None, True, False, numbers, lists and dicts", () => {
    expect(pyValue(null)).toBe("None");
    expect(pyValue(true)).toBe("True");
    expect(pyValue(false)).toBe("False");
    expect(pyValue(0.7)).toBe("0.7");
    expect(pyValue([])).toBe("[]");
    expect(pyValue({ role: "user", content: "hi" })).toBe('{"role": "user", "content": "hi"}');
    expect(pyValue({ a: [1, 2] })).toBe('{"a": [1, 2]}');
    const long = "x".repeat(70);
    expect(pyValue({ a: [long, "y"] })).toBe(`{\n    "a": [\n        "${long}",\n        "y",\n    ],\n}`);
    expect(pyValue([{ role: "user", content: long }], 1)).toBe(`[\n        {"role": "user", "content": "${long}"},\n    ]`);
  });

  it.skipIf(!HAVE_PYTHON)("gives back every test string when Python evaluates it", () => {
    const value = { texts: NASTY, nested: [{ ok: true, no: false, none: null, n: 1.5 }] };
    expect(pythonEval(pyValue(value))).toEqual(value);
    for (const s of NASTY) expect(pythonEval(pyString(s))).toBe(s);
  }, SLOW);
});

// ------------------------------------------------------------------ chat

const chatOpts = (text: string) => ({
  base: BASE + "/",
  model: "smollm2-135m-instruct",
  messages: [
    { role: "system", content: "Be brief." },
    { role: "user", content: text },
    { role: "assistant", content: "Sure: " + text },
    { role: "user", content: "again" },
  ] as ChatMessage[],
  temperature: 0.35,
  maxTokens: 128,
});

describe("chat snippets", () => {
  it("builds the streamed request the page sends", () => {
    const o = chatOpts("hi");
    expect(chatRequest(o)).toEqual({
      model: "smollm2-135m-instruct",
      messages: o.messages,
      stream: true,
      stream_options: { include_usage: true },
      temperature: 0.35,
      max_tokens: 128,
    });
  });

  it("carries the tools and the tool choice when tools are set", () => {
    const tools = [{ type: "function", function: { name: "get_weather", parameters: { type: "object", properties: {} } } }];
    const o = { ...chatOpts("hi"), tools, toolChoice: "required" };
    expect(chatRequest(o)).toMatchObject({ tools, tool_choice: "required" });
    expect(chatRequest(chatOpts("hi"))).not.toHaveProperty("tools");
    const code = chatPython(o);
    expect(code).toContain('tool_choice="required"');
    expect(code).toContain('"get_weather"');
    expect(code).toContain("delta.tool_calls");
    const words = shellWords(chatCurl(o), { AIAAS_API_KEY: "k" });
    expect(JSON.parse(words[words.indexOf("-d") + 1])).toEqual(chatRequest(o));
  });

  it.each(NASTY)("curl: the body is valid JSON equal to the request after shell unquoting (%j)", (text) => {
    const o = chatOpts(text);
    const code = chatCurl(o);
    const words = shellWords(code, { AIAAS_API_KEY: "sk-test-123" });
    expect(words[0]).toBe("curl");
    expect(words).toContain("-N");
    expect(words).toContain(`${BASE}/v1/chat/completions`);
    expect(words).toContain("Authorization: Bearer sk-test-123");
    expect(words).toContain("Content-Type: application/json");
    const body = words[words.indexOf("-d") + 1];
    expect(JSON.parse(body)).toEqual(chatRequest(o));
  });

  it.skipIf(!HAVE_BASH)("curl: bash passes curl exactly the request", () => {
    for (const text of NASTY) {
      const o = chatOpts(text);
      const args = runCurl(chatCurl(o));
      expect(args.slice(0, 2)).toEqual(["-N", `${BASE}/v1/chat/completions`]);
      expect(args).toContain("Authorization: Bearer sk-test-123");
      expect(args[args.length - 2]).toBe("-d");
      expect(JSON.parse(args[args.length - 1])).toEqual(chatRequest(o));
    }
  }, SLOW);

  it("python: uses the openai client on the base URL, the key from the environment", () => {
    const code = chatPython(chatOpts("hello"));
    expect(code).toContain("from openai import OpenAI");
    expect(code).toContain(`BASE = "${BASE}"`);
    expect(code).toContain('client = OpenAI(base_url=f"{BASE}/v1", api_key=os.environ["AIAAS_API_KEY"])');
    expect(code).toContain('model="smollm2-135m-instruct"');
    expect(code).toContain("temperature=0.35");
    expect(code).toContain("max_tokens=128");
    expect(code).toContain("stream=True");
  });

  it.skipIf(!HAVE_PYTHON)("python: runs and calls chat.completions.create with the conversation", () => {
    for (const text of NASTY) {
      const o = chatOpts(text);
      const { calls, stdout } = runPython(chatPython(o));
      expect(calls[0]).toEqual({ kind: "client", data: { base_url: `${BASE}/v1`, api_key: "sk-test-123" } });
      expect(calls[1].kind).toBe("chat");
      expect(calls[1].data).toEqual({
        model: o.model,
        messages: o.messages,
        temperature: 0.35,
        max_tokens: 128,
        stream: true,
        stream_options: { include_usage: true },
      });
      expect(stdout).toContain("Hello");
      expect(stdout).toContain("[2 tokens]");
    }
    const tools = [{ type: "function", function: { name: "get_weather", parameters: { type: "object" } } }];
    const { calls, stdout } = runPython(chatPython({ ...chatOpts("weather?"), tools, toolChoice: "auto" }));
    expect(calls[1].data).toMatchObject({ tools, tool_choice: "auto" });
    expect(stdout).toContain('get_weather {"city": "Oslo"}');
  }, SLOW);

  it("offers curl and Python, and never a key", () => {
    const s = chatSnippets(chatOpts("x"));
    expect(s.map((x) => x.label)).toEqual(["curl", "Python (openai)"]);
    for (const x of s) {
      expect(x.code).toContain("AIAAS_API_KEY");
      expect(x.code).not.toMatch(/Bearer [A-Za-z0-9]/);
    }
  });
});

// ------------------------------------------------------------------ classify

describe("classify snippets", () => {
  it("predict path escapes the model name", () => {
    expect(predictPath("news")).toBe("/api/v1/models/news/predict");
    expect(predictPath("news:prod")).toBe("/api/v1/models/news%3Aprod/predict");
    expect(predictPath("a b/c")).toBe("/api/v1/models/a%20b%2Fc/predict");
  });

  it.each(NASTY)("curl: POSTs {texts:[text]} to the model (%j)", (text) => {
    const code = classifyCurl({ base: BASE, model: "news", text });
    const words = shellWords(code, { AIAAS_API_KEY: "k" });
    expect(words).not.toContain("-N");
    expect(words).toContain(`${BASE}/api/v1/models/news/predict`);
    expect(words).toContain("Authorization: Bearer k");
    expect(JSON.parse(words[words.indexOf("-d") + 1])).toEqual({ texts: [text] });
  });

  it.skipIf(!HAVE_BASH)("curl: bash passes curl exactly the request", () => {
    for (const text of NASTY) {
      const args = runCurl(classifyCurl({ base: BASE, model: "news", text }));
      expect(args[0]).toBe(`${BASE}/api/v1/models/news/predict`);
      expect(JSON.parse(args[args.length - 1])).toEqual({ texts: [text] });
    }
  }, SLOW);

  it("python: uses requests with the key from the environment", () => {
    const code = classifyPython({ base: BASE, model: "news", text: "hi" });
    expect(code).toContain("import requests");
    expect(code).toContain(`BASE = "${BASE}"`);
    expect(code).toContain('MODEL = "news"');
    expect(code).toContain('os.environ["AIAAS_API_KEY"]');
    expect(code).not.toContain("openai");
  });

  it.skipIf(!HAVE_PYTHON)("python: runs and posts the text", () => {
    for (const text of NASTY) {
      const { calls, stdout } = runPython(classifyPython({ base: BASE, model: "news:prod", text }));
      expect(calls).toEqual([
        {
          kind: "post",
          data: {
            url: `${BASE}/api/v1/models/news%3Aprod/predict`,
            headers: { Authorization: "Bearer sk-test-123" },
            json: { texts: [text] },
          },
        },
      ]);
      expect(stdout).toContain("a 0.9");
      expect(stdout).toContain("b: 10.0%");
    }
  }, SLOW);

  it("offers curl and Python (requests)", () => {
    expect(classifySnippets({ base: BASE, model: "m", text: "t" }).map((s) => s.label)).toEqual(["curl", "Python (requests)"]);
  });
});

// ------------------------------------------------------------------ embeddings

describe("embeddings snippets", () => {
  it.each(NASTY)("curl: POSTs {model, input} (%j)", (text) => {
    const inputs = [text, "second"];
    const words = shellWords(embeddingsCurl({ base: BASE, model: "all-minilm-l6-v2", inputs }), { AIAAS_API_KEY: "k" });
    expect(words).toContain(`${BASE}/v1/embeddings`);
    expect(JSON.parse(words[words.indexOf("-d") + 1])).toEqual({ model: "all-minilm-l6-v2", input: inputs });
    expect(embeddingsRequest("all-minilm-l6-v2", inputs)).toEqual({ model: "all-minilm-l6-v2", input: inputs });
  });

  it("python: uses the openai client on the base URL", () => {
    const code = embeddingsPython({ base: BASE, model: "all-minilm-l6-v2", inputs: ["a", "b"] });
    expect(code).toContain('client = OpenAI(base_url=f"{BASE}/v1", api_key=os.environ["AIAAS_API_KEY"])');
    expect(code).toContain(`BASE = "${BASE}"`);
    expect(code).toContain('model="all-minilm-l6-v2"');
  });

  it.skipIf(!HAVE_PYTHON)("python: runs, embeds the sentences and prints the similarity matrix", () => {
    const inputs = NASTY.slice(2, 6);
    const { calls, stdout } = runPython(embeddingsPython({ base: BASE, model: "all-minilm-l6-v2", inputs }));
    expect(calls[0].data.base_url).toBe(`${BASE}/v1`);
    expect(calls[1]).toEqual({ kind: "embeddings", data: { model: "all-minilm-l6-v2", input: inputs } });
    const lines = stdout.trim().split("\n");
    expect(lines[0]).toBe("dimension: 3");
    expect(lines).toHaveLength(1 + inputs.length);
    expect(lines[1].split(" ")[0]).toBe("1.000");
  }, SLOW);

  it("offers curl and Python", () => {
    expect(embeddingsSnippets({ base: BASE, model: "m", inputs: ["a", "b"] }).map((s) => s.label)).toEqual(["curl", "Python (openai)"]);
  });

  it("snippet ids are unique over the three tabs (they become element ids)", () => {
    const ids = [
      ...chatSnippets(chatOpts("x")),
      ...classifySnippets({ base: BASE, model: "m", text: "t" }),
      ...embeddingsSnippets({ base: BASE, model: "m", inputs: ["a", "b"] }),
    ].map((s) => s.id);
    expect(new Set(ids).size).toBe(6);
  });
});

// ------------------------------------------------------------------ entities

describe("entity snippets", () => {
  it.each(NASTY)("curl: POSTs {texts: [text], aggregation} (%j)", (text) => {
    const words = shellWords(nerCurl({ base: BASE, model: "pii-ner", text, aggregation: "first" }), { AIAAS_API_KEY: "k" });
    expect(words).toContain(`${BASE}/api/v1/models/pii-ner/predict`);
    expect(JSON.parse(words[words.indexOf("-d") + 1])).toEqual({ texts: [text], aggregation: "first" });
  });

  it.skipIf(!HAVE_PYTHON)("python: runs, posts the text and prints the entities", () => {
    for (const text of NASTY.slice(0, 6)) {
      const { calls, stdout } = runPython(nerPython({ base: BASE, model: "pii-ner", text, aggregation: "max" }));
      expect(calls[0].data.json).toEqual({ texts: [text], aggregation: "max" });
      expect(stdout).toContain("GIVEN_NAME 'Mary' 3 7 0.98");
    }
  }, SLOW);

  it("offers curl and Python, with ids no other tab uses", () => {
    const ids = [...nerSnippets({ base: BASE, model: "m", text: "t", aggregation: "simple" }), ...ocrSnippets({ base: BASE, model: "m", file: "p.png" })].map((s) => s.id);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

// ------------------------------------------------------------------ ocr

describe("ocr snippets", () => {
  const FILES = ["page.png", "my scan (1).jpg", "it's $HOME `id`.png", "发票.png"];

  it.each(FILES)("curl: sends the file as a form field (%j)", (file) => {
    const words = shellWords(ocrCurl({ base: BASE, model: "ppocr-v4", file }), { AIAAS_API_KEY: "k" });
    expect(words).toContain(`${BASE}/api/v1/models/ppocr-v4/predict`);
    expect(words).toContain("Authorization: Bearer k");
    expect(words[words.indexOf("-F") + 1]).toBe(`page=@${file}`);
  });

  it.skipIf(!HAVE_BASH)("curl: bash passes curl exactly the form", () => {
    for (const file of FILES) {
      const args = runCurl(ocrCurl({ base: BASE, model: "ppocr-v4", file }));
      expect(args[0]).toBe(`${BASE}/api/v1/models/ppocr-v4/predict`);
      expect(args[args.length - 1]).toBe(`page=@${file}`);
    }
  }, SLOW);

  it.skipIf(!HAVE_PYTHON)("python: reads the file, posts it as base64 and prints the lines", () => {
    const file = join(work, "a page's scan.png");
    writeFileSync(file, "PNG bytes", "utf8");
    const { calls, stdout } = runPython(ocrPython({ base: BASE, model: "ppocr-v4", file }));
    expect(calls).toEqual([
      {
        kind: "post",
        data: {
          url: `${BASE}/api/v1/models/ppocr-v4/predict`,
          headers: { Authorization: "Bearer sk-test-123" },
          json: { images: [btoa("PNG bytes")] },
        },
      },
    ]);
    expect(stdout).toContain("Hello world");
    expect(stdout).toContain("0.97 [[1, 2], [30, 2], [30, 12], [1, 12]] Hello world");
  }, SLOW);

  it("offers curl and Python, with ids no other tab uses", () => {
    const ocr = ocrSnippets({ base: BASE, model: "m", file: "p.png" });
    expect(ocr.map((s) => s.label)).toEqual(["curl", "Python (requests)"]);
    const ids = [...ocr, ...classifySnippets({ base: BASE, model: "m", text: "t" }), ...chatSnippets(chatOpts("x"))].map((s) => s.id);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe("base URL", () => {
  it("drops trailing slashes", () => {
    expect(normalBase("http://h:1/")).toBe("http://h:1");
    expect(normalBase("http://h:1//")).toBe("http://h:1");
    expect(chatCurl({ ...chatOpts("x"), base: "https://ai.example.com/" })).toContain("'https://ai.example.com/v1/chat/completions'");
  });
});

// ------------------------------------------------------------------ the page's arithmetic

describe("playground maths", () => {
  it("cosine similarity", () => {
    expect(cosine([1, 0], [1, 0])).toBeCloseTo(1);
    expect(cosine([1, 0], [0, 1])).toBeCloseTo(0);
    expect(cosine([1, 2, 3], [2, 4, 6])).toBeCloseTo(1);
    expect(cosine([1, 0], [-1, 0])).toBeCloseTo(-1);
    expect(cosine([0, 0], [1, 1])).toBe(0);
  });

  it("similarity matrix is symmetric with a unit diagonal; the best pair is found", () => {
    const m = similarityMatrix([
      [1, 0, 0],
      [0.9, 0.1, 0],
      [0, 0, 1],
    ]);
    for (let i = 0; i < 3; i++) {
      expect(m[i][i]).toBeCloseTo(1);
      for (let j = 0; j < 3; j++) expect(m[i][j]).toBeCloseTo(m[j][i]);
    }
    expect(mostSimilarPair(m)).toMatchObject({ i: 0, j: 1 });
    expect(mostSimilarPair([[1]])).toBeNull();
  });

  it("time to first token and tokens per second", () => {
    // Sent at 1000 ms, first token at 1250 ms, done at 3250 ms: 2 s of generation.
    expect(generationStats({ start: 1000, firstToken: 1250, end: 3250, chunks: 30, usageTokens: 40 })).toEqual({
      ttftMs: 250,
      tokens: 40,
      tokensPerSecond: 20,
    });
    // Without a usage chunk, content chunks are counted.
    expect(generationStats({ start: 0, firstToken: 100, end: 1100, chunks: 30, usageTokens: undefined }).tokensPerSecond).toBe(30);
    // Nothing came: nothing to measure.
    expect(generationStats({ start: 0, firstToken: undefined, end: 500, chunks: 0, usageTokens: undefined })).toEqual({
      ttftMs: null,
      tokens: 0,
      tokensPerSecond: null,
    });
  });
});

// ------------------------------------------------------------------ speech

describe("speech snippets", () => {
  it("curl: posts the file and the model as a form to the OpenAI audio route", () => {
    const code = speechCurl({ base: BASE, model: "whisper-tiny-en", file: "it's $HOME.mp3" });
    expect(code).toContain("/v1/audio/transcriptions");
    expect(code).toContain("-F 'model=whisper-tiny-en'");
    // The file name is quoted for the shell: no expansion of $HOME, the quote kept.
    expect(code).toContain(`-F 'file=@it'\\''s $HOME.mp3'`);
  });

  it("python: the openai client with segments", () => {
    const code = speechPython({ base: BASE, model: "whisper-tiny-en", file: "a.flac" });
    expect(code).toContain("from openai import OpenAI");
    expect(code).toContain('client.audio.transcriptions.create(');
    expect(code).toContain('model="whisper-tiny-en", file=f,');
    expect(code).toContain("for s in t.segments:");
  });

  it("has ids no other tab uses", () => {
    const ids = [...speechSnippets({ base: BASE, model: "m", file: "a.wav" }), ...ocrSnippets({ base: BASE, model: "m", file: "p.png" })].map((s) => s.id);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
