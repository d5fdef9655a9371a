// "Show code" for the Playground: the same call the page makes, as curl and as Python.
// Pure functions of what the user entered; the key never appears (an environment
// variable stands for it), and every user-supplied string is quoted for its language.

export interface Snippet {
  /** Unique over the page (the code panel's tab ids become element ids): `chat-curl`, … */
  id: string;
  label: string;
  code: string;
}

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

/** The environment variable the snippets read the key from. */
export const KEY_VAR = "AIAAS_API_KEY";

// ---------------------------------------------------------------- quoting

/** A POSIX shell word holding exactly `s`: single quotes, each `'` written as `'\''`. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, "0");
}

/**
 * A Python 3 string literal equal to `s`. Printable Unicode stays as is (Python source
 * is UTF-8); quotes, backslashes, control characters, line separators and lone
 * surrogates are escaped.
 */
export function pyString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === "\\") out += "\\\\";
    else if (ch === '"') out += '\\"';
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) out += `\\x${hex(c, 2)}`;
    else if ((c >= 0xd800 && c <= 0xdfff) || c === 0x2028 || c === 0x2029 || c === 0xfeff) out += `\\u${hex(c, 4)}`;
    else out += ch;
  }
  return out + '"';
}

/** A JSON-like value as a Python literal on one line. */
function pyInline(v: unknown): string {
  if (v === null || v === undefined) return "None";
  if (v === true) return "True";
  if (v === false) return "False";
  if (typeof v === "number") return Number.isFinite(v) ? String(v) : "None";
  if (typeof v === "string") return pyString(v);
  if (Array.isArray(v)) return `[${v.map(pyInline).join(", ")}]`;
  if (typeof v === "object") {
    const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
    return `{${entries.map(([k, x]) => `${pyString(k)}: ${pyInline(x)}`).join(", ")}}`;
  }
  return pyString(String(v));
}

/**
 * A JSON-like value as a Python literal (None/True/False, lists, dicts): on one line when
 * short or a flat dict, else one item a line, indented by `indent` levels of four spaces.
 */
export function pyValue(v: unknown, indent = 0): string {
  const inline = pyInline(v);
  if (inline.length <= 72 || v === null || typeof v !== "object") return inline;
  // A flat dict (a chat message) stays on one line however long.
  if (!Array.isArray(v) && Object.values(v).every((x) => x === null || typeof x !== "object")) return inline;
  const pad = "    ".repeat(indent + 1);
  const end = "    ".repeat(indent);
  if (Array.isArray(v)) {
    return `[\n${v.map((x) => `${pad}${pyValue(x, indent + 1)},\n`).join("")}${end}]`;
  }
  const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
  return `{\n${entries.map(([k, x]) => `${pad}${pyString(k)}: ${pyValue(x, indent + 1)},\n`).join("")}${end}}`;
}

/** The server's address without a trailing slash. */
export function normalBase(base: string): string {
  return base.replace(/\/+$/, "");
}

function curlCall(url: string, body: unknown, stream = false): string {
  return [
    `# export ${KEY_VAR}=<your key>`,
    `curl${stream ? " -N" : ""} ${shellQuote(url)} \\`,
    `  -H "Authorization: Bearer $${KEY_VAR}" \\`,
    `  -H 'Content-Type: application/json' \\`,
    `  -d ${shellQuote(JSON.stringify(body, null, 2))}`,
    "",
  ].join("\n");
}

function openaiClient(base: string): string {
  return [
    "import os",
    "",
    "from openai import OpenAI",
    "",
    `BASE = ${pyString(normalBase(base))}`,
    `client = OpenAI(base_url=f"{BASE}/v1", api_key=os.environ["${KEY_VAR}"])`,
  ].join("\n");
}

// ---------------------------------------------------------------- chat

export interface ChatOptions {
  base: string;
  model: string;
  messages: ChatMessage[];
  temperature: number;
  maxTokens: number;
  /** Function tools (OpenAI's `tools` list) and the tool choice, when any are set. */
  tools?: unknown[];
  toolChoice?: string;
}

/** The body of POST /v1/chat/completions, streamed with the usage chunk at the end. */
export function chatRequest(o: Omit<ChatOptions, "base">) {
  return {
    model: o.model,
    messages: o.messages.map((m) => ({ role: m.role, content: m.content })),
    stream: true,
    stream_options: { include_usage: true },
    temperature: o.temperature,
    max_tokens: o.maxTokens,
    ...(o.tools?.length ? { tools: o.tools, tool_choice: o.toolChoice ?? "auto" } : {}),
  };
}

export function chatCurl(o: ChatOptions): string {
  return curlCall(`${normalBase(o.base)}/v1/chat/completions`, chatRequest(o), true);
}

export function chatPython(o: ChatOptions): string {
  const messages = o.messages.map((m) => ({ role: m.role, content: m.content }));
  return [
    openaiClient(o.base),
    "",
    "stream = client.chat.completions.create(",
    `    model=${pyString(o.model)},`,
    `    messages=${pyValue(messages, 1)},`,
    `    temperature=${pyValue(o.temperature)},`,
    `    max_tokens=${pyValue(o.maxTokens)},`,
    ...(o.tools?.length ? [`    tools=${pyValue(o.tools, 1)},`, `    tool_choice=${pyString(o.toolChoice ?? "auto")},`] : []),
    "    stream=True,",
    '    stream_options={"include_usage": True},',
    ")",
    "for chunk in stream:",
    "    if chunk.choices and chunk.choices[0].delta.content:",
    '        print(chunk.choices[0].delta.content, end="", flush=True)',
    ...(o.tools?.length
      ? ["    for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:", '        print(call.function.name or "", call.function.arguments or "", end="", flush=True)']
      : []),
    "    if chunk.usage:",
    '        print(f"\\n[{chunk.usage.completion_tokens} tokens]")',
    "",
  ].join("\n");
}

export function chatSnippets(o: ChatOptions): Snippet[] {
  return [
    { id: "chat-curl", label: "curl", code: chatCurl(o) },
    { id: "chat-python", label: "Python (openai)", code: chatPython(o) },
  ];
}

// ---------------------------------------------------------------- classify

export interface ClassifyOptions {
  base: string;
  model: string;
  text: string;
}

/** The path of a trained model's predict endpoint (the name may carry `:version`). */
export function predictPath(model: string): string {
  return `/api/v1/models/${encodeURIComponent(model)}/predict`;
}

export function classifyRequest(text: string) {
  return { texts: [text] };
}

export function classifyCurl(o: ClassifyOptions): string {
  return curlCall(`${normalBase(o.base)}${predictPath(o.model)}`, classifyRequest(o.text));
}

export function classifyPython(o: ClassifyOptions): string {
  return [
    "import os",
    "",
    "import requests",
    "",
    `BASE = ${pyString(normalBase(o.base))}`,
    `MODEL = ${pyString(encodeURIComponent(o.model))}`,
    "",
    "resp = requests.post(",
    '    f"{BASE}/api/v1/models/{MODEL}/predict",',
    `    headers={"Authorization": "Bearer " + os.environ["${KEY_VAR}"]},`,
    `    json=${pyValue(classifyRequest(o.text), 1)},`,
    "    timeout=60,",
    ")",
    "resp.raise_for_status()",
    'prediction = resp.json()["predictions"][0]',
    'print(prediction["label"], prediction["confidence"])',
    'for label, p in sorted(prediction["probabilities"].items(), key=lambda kv: -kv[1]):',
    '    print(f"  {label}: {p:.1%}")',
    "",
  ].join("\n");
}

export function classifySnippets(o: ClassifyOptions): Snippet[] {
  return [
    { id: "classify-curl", label: "curl", code: classifyCurl(o) },
    { id: "classify-python", label: "Python (requests)", code: classifyPython(o) },
  ];
}

// ---------------------------------------------------------------- embeddings

export interface EmbeddingsOptions {
  base: string;
  model: string;
  inputs: string[];
}

export function embeddingsRequest(model: string, inputs: string[]) {
  return { model, input: [...inputs] };
}

export function embeddingsCurl(o: EmbeddingsOptions): string {
  return curlCall(`${normalBase(o.base)}/v1/embeddings`, embeddingsRequest(o.model, o.inputs));
}

export function embeddingsPython(o: EmbeddingsOptions): string {
  return [
    "import math",
    openaiClient(o.base),
    "",
    "resp = client.embeddings.create(",
    `    model=${pyString(o.model)},`,
    `    input=${pyValue(o.inputs, 1)},`,
    ")",
    "vectors = [d.embedding for d in sorted(resp.data, key=lambda d: d.index)]",
    'print("dimension:", len(vectors[0]))',
    "",
    "",
    "def cosine(a, b):",
    "    dot = sum(x * y for x, y in zip(a, b))",
    "    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))",
    "",
    "",
    "for a in vectors:",
    '    print(" ".join(f"{cosine(a, b):.3f}" for b in vectors))',
    "",
  ].join("\n");
}

export function embeddingsSnippets(o: EmbeddingsOptions): Snippet[] {
  return [
    { id: "embeddings-curl", label: "curl", code: embeddingsCurl(o) },
    { id: "embeddings-python", label: "Python (openai)", code: embeddingsPython(o) },
  ];
}

// ---------------------------------------------------------------- ocr

/** A call that sends one file (an image, a recording) to a model. */
export interface FileOptions {
  base: string;
  model: string;
  /** The file's name, as the snippets read it from disk. */
  file: string;
}

/** A multipart POST with the key from the environment: each of `fields` is one form
 * field, `name=value` or `name=@path` for a file, quoted for the shell. */
function curlForm(url: string, fields: string[]): string {
  return [
    `# export ${KEY_VAR}=<your key>`,
    `curl ${shellQuote(url)} \\`,
    `  -H "Authorization: Bearer $${KEY_VAR}" \\`,
    `  ${fields.map((f) => `-F ${shellQuote(f)}`).join(" ")}`,
    "",
  ].join("\n");
}

export function ocrCurl(o: FileOptions): string {
  return curlForm(`${normalBase(o.base)}${predictPath(o.model)}`, [`page=@${o.file}`]);
}

export function ocrPython(o: FileOptions): string {
  return [
    "import base64",
    "import os",
    "",
    "import requests",
    "",
    `BASE = ${pyString(normalBase(o.base))}`,
    `MODEL = ${pyString(encodeURIComponent(o.model))}`,
    "",
    `with open(${pyString(o.file)}, "rb") as f:`,
    "    page = base64.b64encode(f.read()).decode()",
    "resp = requests.post(",
    '    f"{BASE}/api/v1/models/{MODEL}/predict",',
    `    headers={"Authorization": "Bearer " + os.environ["${KEY_VAR}"]},`,
    '    json={"images": [page]},',
    "    timeout=120,",
    ")",
    "resp.raise_for_status()",
    'reading = resp.json()["predictions"][0]',
    'print(reading["text"])',
    'for line in reading["lines"]:',
    '    print(f\'{line["confidence"]:.2f}\', line["box"], line["text"])',
    "",
  ].join("\n");
}

export function ocrSnippets(o: FileOptions): Snippet[] {
  return [
    { id: "ocr-curl", label: "curl", code: ocrCurl(o) },
    { id: "ocr-python", label: "Python (requests)", code: ocrPython(o) },
  ];
}

// ---------------------------------------------------------------- entities (NER)

export interface NerOptions {
  base: string;
  model: string;
  text: string;
  aggregation: string;
}

export function nerRequest(text: string, aggregation: string) {
  return { texts: [text], aggregation };
}

export function nerCurl(o: NerOptions): string {
  return curlCall(`${normalBase(o.base)}${predictPath(o.model)}`, nerRequest(o.text, o.aggregation));
}

export function nerPython(o: NerOptions): string {
  return [
    "import os",
    "",
    "import requests",
    "",
    `BASE = ${pyString(normalBase(o.base))}`,
    `MODEL = ${pyString(encodeURIComponent(o.model))}`,
    "",
    "resp = requests.post(",
    '    f"{BASE}/api/v1/models/{MODEL}/predict",',
    `    headers={"Authorization": "Bearer " + os.environ["${KEY_VAR}"]},`,
    `    json=${pyValue(nerRequest(o.text, o.aggregation), 1)},`,
    "    timeout=60,",
    ")",
    "resp.raise_for_status()",
    'for e in resp.json()["predictions"][0]["entities"]:',
    '    print(e["label"], repr(e["text"]), e["start"], e["end"], f\'{e["score"]:.2f}\')',
    "",
  ].join("\n");
}

export function nerSnippets(o: NerOptions): Snippet[] {
  return [
    { id: "ner-curl", label: "curl", code: nerCurl(o) },
    { id: "ner-python", label: "Python (requests)", code: nerPython(o) },
  ];
}

// ---------------------------------------------------------------- speech to text

export function speechCurl(o: FileOptions): string {
  return curlForm(`${normalBase(o.base)}/v1/audio/transcriptions`, [
    `file=@${o.file}`,
    `model=${o.model}`,
    "response_format=verbose_json",
  ]);
}

export function speechPython(o: FileOptions): string {
  return [
    "import os",
    "",
    "from openai import OpenAI",
    "",
    `client = OpenAI(base_url=${pyString(`${normalBase(o.base)}/v1`)}, api_key=os.environ["${KEY_VAR}"])`,
    `with open(${pyString(o.file)}, "rb") as f:`,
    "    t = client.audio.transcriptions.create(",
    `        model=${pyString(o.model)}, file=f,`,
    '        response_format="verbose_json", timestamp_granularities=["segment"],',
    "    )",
    "for s in t.segments:",
    '    print(f"{s.start:7.2f} {s.end:7.2f} {s.text}")',
    "",
  ].join("\n");
}

export function speechSnippets(o: FileOptions): Snippet[] {
  return [
    { id: "speech-curl", label: "curl", code: speechCurl(o) },
    { id: "speech-python", label: "Python (openai)", code: speechPython(o) },
  ];
}
