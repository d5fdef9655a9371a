// Widgets the Playground's tabs share: the library's models of some tasks, what a tab
// shows until it has one, a model picker, a number field that accepts what is typed
// until it makes sense, a command.

import type { ComponentChildren, JSX } from "preact";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { useApi } from "../hooks";
import { Empty, ErrorBox, Loading } from "../components/ui";
import type { LibraryModel } from "../types";

/**
 * The library's models of some tasks, with the one picked (kept while it exists).
 * `extra` names more models the caller can pick (a tenant's fine-tuned ones); `preferred`
 * is picked first once it is among them (a link's `?model=`).
 */
export function useLibrary(tasks: string[], extra: string[] = [], preferred?: string | null) {
  const lib = useApi<{ models: LibraryModel[] }>("/api/v1/library");
  const models = useMemo(() => (lib.data?.models ?? []).filter((m) => tasks.includes(m.task)), [lib.data]);
  const [model, setModel] = useState("");
  // The preferred model is picked once it is known (the lists load in any order).
  const applied = useRef<string | null>(null);
  const extraKey = extra.join("\n");
  useEffect(() => {
    const known = (name: string) => models.some((m) => m.name === name) || extra.includes(name);
    if (preferred && preferred !== applied.current && known(preferred)) {
      applied.current = preferred;
      setModel(preferred);
    } else if (models.length && !known(model)) setModel(models[0].name);
  }, [models, extraKey, preferred]);
  return { lib, models, model, setModel };
}

/** The caller's fine-tuned models (`ft:` ids of /v1/models). */
export function useFineTunedModels(): string[] {
  const list = useApi<{ data: { id: string }[] }>("/v1/models");
  return useMemo(() => (list.data?.data ?? []).map((m) => m.id).filter((id) => id.startsWith("ft:")), [list.data]);
}

/**
 * What a tab shows until it has a model to call: the library loading, its error, or how
 * an admin pulls one (`kind` names the models, `pull` the command's model, `why` says
 * what it is); null once there is one.
 */
export function libraryGate(
  library: ReturnType<typeof useLibrary>,
  kind: string,
  pull: string,
  why?: string,
): JSX.Element | null {
  const { lib, models } = library;
  if (lib.loading && !lib.data) return <Loading what="Loading models" />;
  if (lib.error) return <ErrorBox error={lib.error} title="The model library could not be read" />;
  if (models.length > 0) return null;
  return (
    <Empty title={`No ${kind} model in the library yet`}>
      <p>
        An admin pulls one onto the server, for instance <Cmd>aiaas pull {pull}</Cmd>
        {why ? ` (${why}).` : "."}
      </p>
      <button type="button" class="secondary small" onClick={lib.reload}>
        Check again
      </button>
    </Empty>
  );
}

export function ModelSelect({
  id,
  label,
  value,
  onChange,
  options,
  disabled,
}: {
  id: string;
  label: string;
  value: string;
  onChange: (v: string) => void;
  options: { value: string; label: string }[];
  disabled?: boolean;
}) {
  return (
    <label for={id}>
      {label}
      <select id={id} value={value} disabled={disabled} onChange={(e) => onChange((e.target as HTMLSelectElement).value)}>
        {options.map((o) => (
          <option value={o.value}>{o.label}</option>
        ))}
      </select>
    </label>
  );
}

export function libraryOption(m: LibraryModel) {
  return { value: m.name, label: m.loaded ? m.name : `${m.name} (not loaded: the first call loads it)` };
}

/**
 * A number input that lets the user type freely (an empty or half-typed value is kept
 * as text) and reports only valid values, clamped on leaving the field.
 */
export function NumberField({
  id,
  label,
  value,
  min,
  max,
  step,
  integer,
  onChange,
}: {
  id?: string;
  label?: string;
  value: number;
  min: number;
  max: number;
  step: number;
  integer?: boolean;
  onChange: (v: number) => void;
}) {
  const [text, setText] = useState(String(value));
  useEffect(() => {
    if (Number(text) !== value) setText(String(value));
  }, [value]);
  const parse = (raw: string) => {
    if (raw.trim() === "") return undefined;
    const v = integer ? Math.round(Number(raw)) : Number(raw);
    return Number.isFinite(v) ? v : undefined;
  };
  return (
    <input
      type="number"
      id={id}
      aria-label={label}
      inputMode={integer ? "numeric" : "decimal"}
      min={min}
      max={max}
      step={step}
      value={text}
      onInput={(e) => {
        const raw = (e.target as HTMLInputElement).value;
        setText(raw);
        const v = parse(raw);
        if (v !== undefined && v >= min && v <= max) onChange(v);
      }}
      onBlur={() => {
        const v = parse(text);
        const clamped = v === undefined ? value : Math.min(max, Math.max(min, v));
        if (clamped !== value) onChange(clamped);
        setText(String(clamped));
      }}
    />
  );
}

export function Cmd({ children }: { children: ComponentChildren }) {
  return <code class="cmd">{children}</code>;
}
