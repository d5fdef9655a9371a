// Building blocks shared by the pages: errors, empty states, tabs, code panels, bars.

import type { ComponentChildren } from "preact";
import { useId, useState } from "preact/hooks";
import { messageOf } from "../api";

/** The API's own message, never a bare "Error 500". */
export function ErrorBox({ error, title }: { error: unknown; title?: string }) {
  if (error === undefined || error === null) return null;
  return (
    <div class="error" role="alert">
      {title && <strong>{title}: </strong>}
      {messageOf(error)}
    </div>
  );
}

export function Empty({ title, children }: { title: string; children?: ComponentChildren }) {
  return (
    <div class="empty">
      <p>
        <strong>{title}</strong>
      </p>
      {children}
    </div>
  );
}

export function Loading({ what = "Loading" }: { what?: string }) {
  return (
    <p class="muted" aria-busy="true">
      {what}…
    </p>
  );
}

export function PageHeader({ title, children }: { title: string; children?: ComponentChildren }) {
  return (
    <header class="page-header">
      <h1>{title}</h1>
      {children && <div class="actions">{children}</div>}
    </header>
  );
}

/** WAI-ARIA tabs: the selected tab is the one in the tab order; arrow keys, Home and
 * End move between tabs. Each tab's id is `${idPrefix}-${id}`. */
export function Tabs<T extends string>({
  tabs,
  value,
  onChange,
  label,
  idPrefix = "tab",
}: {
  tabs: { id: T; label: string }[];
  value: T;
  onChange: (id: T) => void;
  label: string;
  idPrefix?: string;
}) {
  const move = (e: KeyboardEvent) => {
    const i = tabs.findIndex((t) => t.id === value);
    const to =
      e.key === "ArrowRight" ? (i + 1) % tabs.length
      : e.key === "ArrowLeft" ? (i - 1 + tabs.length) % tabs.length
      : e.key === "Home" ? 0
      : e.key === "End" ? tabs.length - 1
      : -1;
    if (to < 0) return;
    e.preventDefault();
    onChange(tabs[to].id);
    const list = (e.currentTarget as HTMLElement | null)?.closest("[role=tablist]");
    requestAnimationFrame(() => (list?.querySelectorAll<HTMLElement>("[role=tab]")[to])?.focus());
  };
  return (
    <div class="tabs" role="tablist" aria-label={label}>
      {tabs.map((t) => (
        <button
          type="button"
          role="tab"
          id={`${idPrefix}-${t.id}`}
          aria-selected={t.id === value}
          tabIndex={t.id === value ? 0 : -1}
          class={t.id === value ? "tab active" : "tab"}
          onClick={() => onChange(t.id)}
          onKeyDown={move}
        >
          {t.label}
        </button>
      ))}
    </div>
  );
}

export function CopyButton({ text, label = "Copy" }: { text: string; label?: string }) {
  const [done, setDone] = useState(false);
  return (
    <button
      type="button"
      class="secondary small"
      onClick={async () => {
        try {
          await navigator.clipboard.writeText(text);
        } catch {
          // Clipboard refused (no permission, insecure origin): select-and-copy by hand.
          const area = document.createElement("textarea");
          area.value = text;
          document.body.appendChild(area);
          area.select();
          document.execCommand("copy");
          area.remove();
        }
        setDone(true);
        setTimeout(() => setDone(false), 1500);
      }}
    >
      {done ? "Copied" : label}
    </button>
  );
}

/** "Show code": the same call as curl and with the `openai` Python client (or requests). */
export function CodePanel({ snippets }: { snippets: { id: string; label: string; code: string }[] }) {
  const idPrefix = `code${useId()}`;
  const [open, setOpen] = useState(false);
  const [tab, setTab] = useState(snippets[0]?.id ?? "");
  const current = snippets.find((s) => s.id === tab) ?? snippets[0];
  return (
    <div class="code-panel">
      <button type="button" class="secondary small" aria-expanded={open} onClick={() => setOpen(!open)}>
        {open ? "Hide code" : "Show code"}
      </button>
      {open && current && (
        <div>
          <Tabs label="Code language" idPrefix={idPrefix} tabs={snippets.map((s) => ({ id: s.id, label: s.label }))} value={current.id} onChange={setTab} />
          <pre class="code">
            <code>{current.code}</code>
          </pre>
          <CopyButton text={current.code} />
        </div>
      )}
    </div>
  );
}

/** Horizontal bars: a label, a bar proportional to `value / max`, and a caption. */
export function Bars({
  items,
  max,
  label,
}: {
  items: { label: string; value: number; caption?: string }[];
  max?: number;
  label: string;
}) {
  const top = max ?? Math.max(1e-12, ...items.map((i) => i.value));
  return (
    <ul class="bars" aria-label={label}>
      {items.map((i) => (
        <li>
          <span class="bar-label">{i.label}</span>
          <span class="bar-track" aria-hidden="true">
            <span class="bar-fill" style={{ width: `${Math.max(0, Math.min(1, i.value / top)) * 100}%` }} />
          </span>
          <span class="bar-caption">{i.caption ?? String(i.value)}</span>
        </li>
      ))}
    </ul>
  );
}

/** A confusion matrix as a heat-map: rows are true labels, columns predictions. */
export function Heatmap({ labels, matrix }: { labels: string[]; matrix: number[][] }) {
  const rowTotals = matrix.map((r) => r.reduce((a, b) => a + b, 0));
  return (
    <div class="heatmap-wrap">
      <table class="heatmap" aria-label="Confusion matrix (rows: true label, columns: predicted)">
        <thead>
          <tr>
            <th scope="col">true \ predicted</th>
            {labels.map((l) => (
              <th scope="col">{l}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {matrix.map((row, i) => (
            <tr>
              <th scope="row">{labels[i]}</th>
              {row.map((v, j) => {
                const share = rowTotals[i] ? v / rowTotals[i] : 0;
                const hue = i === j ? 140 : 0;
                const alpha = v === 0 ? 0 : 0.15 + 0.85 * share;
                return (
                  <td
                    style={{ background: `hsla(${hue}, 70%, 45%, ${alpha})`, color: share > 0.55 ? "white" : undefined }}
                    title={`${labels[i]} → ${labels[j]}: ${v} (${(share * 100).toFixed(0)}% of the row)`}
                  >
                    {v}
                  </td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function ProgressBar({ value, label }: { value: number; label: string }) {
  return (
    <div class="progress-row">
      <progress value={value} max={1} aria-label={label} />
      <span>{Math.round(value * 100)}%</span>
    </div>
  );
}

export function Stat({ label, value }: { label: string; value: ComponentChildren }) {
  return (
    <div class="stat">
      <span class="stat-value">{value}</span>
      <span class="stat-label">{label}</span>
    </div>
  );
}

export function Badge({ kind, children }: { kind?: "ok" | "warn" | "bad" | "info"; children: ComponentChildren }) {
  return <span class={`badge ${kind ?? ""}`}>{children}</span>;
}
