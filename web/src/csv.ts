// A first look at a data file in the browser, before it is uploaded: its columns and a
// few rows, so the user can pick the text and label columns from a preview. The server
// parses the whole file again on upload; this only reads the start of it.

export interface FilePreview {
  format: "csv" | "jsonl";
  columns: string[];
  rows: string[][];
  /** The columns the server would pick by itself (None: the user must choose). */
  guessText: string | null;
  guessLabel: string | null;
}

const TEXT_COLUMNS = ["text", "content", "sentence", "review", "document", "body", "message"];
const LABEL_COLUMNS = ["label", "category", "class", "sentiment", "target", "topic"];

/** Reads records of a CSV (RFC 4180: quoted fields, doubled quotes, newlines in quotes). */
export function parseCsv(text: string, maxRecords: number): string[][] {
  const records: string[][] = [];
  let field = "";
  let record: string[] = [];
  let quoted = false;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  for (; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else quoted = false;
      } else field += c;
      continue;
    }
    if (c === '"' && field === "") quoted = true;
    else if (c === ",") {
      record.push(field);
      field = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      record.push(field);
      field = "";
      if (!(record.length === 1 && record[0] === "")) records.push(record);
      record = [];
      if (records.length >= maxRecords) return records;
    } else field += c;
  }
  // The last record, unless the text was cut inside it (a partial read of a big file).
  if (!quoted && (field !== "" || record.length > 0)) {
    record.push(field);
    records.push(record);
  }
  return records.slice(0, maxRecords);
}

function guess(columns: string[], candidates: string[], not: string | null): string | null {
  for (const cand of candidates) {
    const hit = columns.find((c) => c.toLowerCase() === cand && c !== not);
    if (hit) return hit;
  }
  return null;
}

/** Preview the start of a file (`head`: its first bytes, decoded). */
export function previewText(head: string, rows = 5): FilePreview {
  const firstChar = head.replace(/^\uFEFF/, "").trimStart()[0];
  if (firstChar === "{") {
    const lines = head.split(/\r?\n/).filter((l) => l.trim() !== "");
    const objects: Record<string, unknown>[] = [];
    for (const line of lines.slice(0, rows + 1)) {
      try {
        const v = JSON.parse(line);
        if (v && typeof v === "object" && !Array.isArray(v)) objects.push(v as Record<string, unknown>);
      } catch {
        break; // a line cut by the partial read
      }
    }
    const columns: string[] = [];
    for (const o of objects) for (const k of Object.keys(o)) if (!columns.includes(k)) columns.push(k);
    const text = guess(columns, TEXT_COLUMNS, null);
    return {
      format: "jsonl",
      columns,
      rows: objects.slice(0, rows).map((o) => columns.map((c) => (o[c] == null ? "" : String(o[c])))),
      guessText: text,
      guessLabel: guess(columns, LABEL_COLUMNS, text),
    };
  }
  const records = parseCsv(head, rows + 2);
  const columns = records[0] ?? [];
  const text = guess(columns, TEXT_COLUMNS, null);
  return {
    format: "csv",
    columns,
    // The last record may be cut by the partial read: show only complete ones.
    rows: records.slice(1, rows + 1).filter((r) => r.length === columns.length),
    guessText: text,
    guessLabel: guess(columns, LABEL_COLUMNS, text),
  };
}

/** Reads the first `bytes` of a file as text (a multi-byte character cut at the end is dropped). */
export async function readHead(file: Blob, bytes = 256 * 1024): Promise<string> {
  const buf = await file.slice(0, bytes).arrayBuffer();
  return new TextDecoder("utf-8", { fatal: false }).decode(buf).replace(/\uFFFD$/, "");
}
