// The Playground's OCR tab: drop (or pick) an image, send it to an OCR model of the
// library, see each line's box drawn over the image and the text beside it; hovering or
// focusing a line highlights its box.

import { useEffect, useState } from "preact/hooks";
import { api, baseUrl } from "../api";
import { useAction } from "../hooks";
import { pct } from "../format";
import { CodePanel, ErrorBox, Loading, Stat } from "../components/ui";
import { ocrSnippets, predictPath } from "../snippets";
import { ModelSelect, libraryOption, libraryGate, useLibrary } from "./playground-widgets";

interface TextLine {
  text: string;
  confidence: number;
  box: [number, number][];
}

interface OcrResponse {
  model: string;
  task: string;
  predictions: { text: string; lines: TextLine[] }[];
}

/** The largest image the tab sends (the server takes up to 40 megapixels). */
const MAX_BYTES = 20 * 1024 * 1024;

function readAsDataUrl(file: File): Promise<string> {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result));
    r.onerror = () => reject(r.error ?? new Error("the file could not be read"));
    r.readAsDataURL(file);
  });
}

function imageSize(url: string): Promise<{ width: number; height: number }> {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve({ width: img.naturalWidth, height: img.naturalHeight });
    img.onerror = () => reject(new Error("the browser cannot show this image"));
    img.src = url;
  });
}

export function OcrTab() {
  const library = useLibrary(["ocr"]);
  const { models, model, setModel } = library;
  const [page, setPage] = useState<{ name: string; url: string; width: number; height: number } | undefined>(undefined);
  const [result, setResult] = useState<{ answer: OcrResponse; ms: number } | undefined>(undefined);
  const [active, setActive] = useState<number | null>(null);
  const [dragging, setDragging] = useState(false);
  const action = useAction();

  const read = async (p: { url: string }, m: string) => {
    if (!m || action.busy) return;
    const start = performance.now();
    const answer = await action.run(() => api<OcrResponse>("POST", predictPath(m), { images: [p.url] }));
    if (answer) setResult({ answer, ms: performance.now() - start });
  };

  const choose = async (file: File | undefined) => {
    if (!file) return;
    setResult(undefined);
    setActive(null);
    if (file.size > MAX_BYTES) {
      action.setError(new Error(`${file.name} is ${(file.size / 1048576).toFixed(1)} MiB; the playground sends images up to 20 MiB.`));
      return;
    }
    try {
      const url = await readAsDataUrl(file);
      const size = await imageSize(url);
      const chosen = { name: file.name, url, ...size };
      setPage(chosen);
      action.setError(undefined);
      await read(chosen, model);
    } catch (e) {
      action.setError(e instanceof Error ? e : new Error(String(e)));
    }
  };

  // A new model reads the page shown again.
  useEffect(() => {
    if (page && model) void read(page, model);
  }, [model]);

  const gate = libraryGate(library, "OCR", "ppocr-v4");
  if (gate) return gate;

  const reading = result?.answer.predictions[0];
  const mean = reading && reading.lines.length ? reading.lines.reduce((s, l) => s + l.confidence, 0) / reading.lines.length : undefined;

  return (
    <div class="card">
      <ModelSelect id="ocr-model" label="Model" value={model} onChange={setModel} options={models.map(libraryOption)} />
      <label
        for="ocr-file"
        class={`drop-zone${dragging ? " dragging" : ""}`}
        onDragOver={(e) => {
          e.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={(e) => {
          e.preventDefault();
          setDragging(false);
          void choose(e.dataTransfer?.files[0]);
        }}
      >
        <strong>Drop an image here</strong> or choose one (PNG, JPEG, WebP, BMP)
        <input
          id="ocr-file"
          type="file"
          accept="image/png,image/jpeg,image/webp,image/bmp"
          onChange={(e) => void choose((e.target as HTMLInputElement).files?.[0])}
        />
      </label>
      <ErrorBox error={action.error} />
      {action.busy && <Loading what="Reading the image" />}
      {page && (
        <div class="ocr-result">
          <figure class="ocr-page">
            <div class="ocr-canvas">
              <img src={page.url} alt={`The image sent: ${page.name}`} />
              {reading && (
                <svg viewBox={`0 0 ${page.width} ${page.height}`} preserveAspectRatio="none" aria-hidden="true">
                  {reading.lines.map((l, i) => (
                    <polygon
                      class={i === active ? "ocr-box active" : "ocr-box"}
                      points={l.box.map(([x, y]) => `${x},${y}`).join(" ")}
                      onMouseEnter={() => setActive(i)}
                      onMouseLeave={() => setActive(null)}
                    />
                  ))}
                </svg>
              )}
            </div>
            <figcaption class="muted small">
              {page.name} · {page.width} × {page.height} px
            </figcaption>
          </figure>
          {reading && result && (
            <div class="ocr-lines" aria-live="polite">
              <div class="stats">
                <Stat label="lines" value={reading.lines.length} />
                {mean !== undefined && <Stat label="mean confidence" value={pct(mean, 1)} />}
                <Stat label="answered in" value={`${Math.round(result.ms)} ms`} />
              </div>
              {reading.lines.length === 0 ? (
                <p class="muted">No text was found on this image.</p>
              ) : (
                <ol aria-label="Lines read, in reading order">
                  {reading.lines.map((l, i) => (
                    <li
                      tabIndex={0}
                      class={i === active ? "active" : undefined}
                      onMouseEnter={() => setActive(i)}
                      onMouseLeave={() => setActive(null)}
                      onFocus={() => setActive(i)}
                      onBlur={() => setActive(null)}
                    >
                      <span class="ocr-text">{l.text}</span> <span class="muted small">{pct(l.confidence, 1)}</span>
                    </li>
                  ))}
                </ol>
              )}
              <details>
                <summary>Full text</summary>
                <pre class="ocr-full">{reading.text}</pre>
              </details>
            </div>
          )}
        </div>
      )}
      <CodePanel snippets={ocrSnippets({ base: baseUrl(), model, file: page?.name ?? "page.png" })} />
    </div>
  );
}
