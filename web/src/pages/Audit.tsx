// The audit trail: filter, page through (oldest first), export as JSON lines, and for
// admins verify the hash chain.

import { useEffect, useMemo, useState } from "preact/hooks";
import { api, download } from "../api";
import {
  AuditEntry,
  AuditFilters,
  AuditVerification,
  Outcome,
  PERIODS,
  auditQuery,
  distinctActions,
  exportFilename,
  msToLocalInput,
  outcomeKind,
  periodRange,
  prettyDetail,
} from "../audit";
import { Badge, Empty, ErrorBox, Loading, PageHeader } from "../components/ui";
import { when } from "../format";
import { useAction, useApi } from "../hooks";
import { can, useMe } from "../me";
import type { ApiKey, Tenant } from "../types";

const PAGE_SIZES = [50, 100, 500];
/** Common action prefixes, besides those seen in the entries loaded. */
const ACTION_HINTS = ["auth.", "POST /api/v1/keys", "DELETE /api/v1/keys", "POST /api/v1/tenants", "PUT /api/v1/tenants"];

function inputValue(e: Event): string {
  return (e.target as HTMLInputElement | HTMLSelectElement).value;
}

interface Form {
  action: string;
  outcome: Outcome;
  key: string;
  tenant: string;
  period: string;
  since: string;
  until: string;
  pageSize: number;
}

const DEFAULT_FORM: Form = { action: "", outcome: "", key: "", tenant: "", period: "24h", since: "", until: "", pageSize: 100 };

function filtersOf(f: Form, now = Date.now()): AuditFilters {
  const range = periodRange(f.period, { since: f.since, until: f.until }, now);
  return { action: f.action, outcome: f.outcome, key: f.key, tenant: f.tenant, ...range };
}

export function AuditPage() {
  const me = useMe();
  const isAdmin = can(me, "manage_tenants");
  const keys = useApi<{ keys: ApiKey[] }>(can(me, "manage_keys") ? "/api/v1/keys" : null);
  const tenants = useApi<{ tenants: Tenant[] }>(isAdmin ? "/api/v1/tenants" : null);

  const [form, setForm] = useState<Form>(DEFAULT_FORM);
  // What the table shows: the filters as last applied, with a page size.
  const [applied, setApplied] = useState<{ filters: AuditFilters; pageSize: number; n: number }>(() => ({
    filters: filtersOf(DEFAULT_FORM),
    pageSize: DEFAULT_FORM.pageSize,
    n: 0,
  }));
  const [entries, setEntries] = useState<AuditEntry[] | null>(null);
  const [more, setMore] = useState(false);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const exporting = useAction();
  const verifying = useAction();
  const [verification, setVerification] = useState<AuditVerification | null>(null);

  // The first page whenever the filters are applied.
  useEffect(() => {
    const ctl = new AbortController();
    setLoading(true);
    setError(undefined);
    api<{ entries: AuditEntry[] }>("GET", `/api/v1/audit${auditQuery(applied.filters, { limit: applied.pageSize })}`, undefined, {
      signal: ctl.signal,
    })
      .then((r) => {
        setEntries(r.entries);
        setMore(r.entries.length >= applied.pageSize);
      })
      .catch((e) => {
        if ((e as Error).name !== "AbortError") {
          setError(e);
          setEntries(null);
        }
      })
      .finally(() => {
        if (!ctl.signal.aborted) setLoading(false);
      });
    return () => ctl.abort();
  }, [applied]);

  const loadMore = async () => {
    if (!entries || entries.length === 0) return;
    const after = entries[entries.length - 1].seq;
    setLoading(true);
    setError(undefined);
    try {
      const r = await api<{ entries: AuditEntry[] }>(
        "GET",
        `/api/v1/audit${auditQuery(applied.filters, { after, limit: applied.pageSize })}`,
      );
      setEntries([...entries, ...r.entries]);
      setMore(r.entries.length >= applied.pageSize);
    } catch (e) {
      setError(e);
    } finally {
      setLoading(false);
    }
  };

  const apply = (f: Form) => setApplied({ filters: filtersOf(f), pageSize: f.pageSize, n: applied.n + 1 });

  const keyName = useMemo(() => {
    const m = new Map<string, string>([[me.key.id, me.key.name]]);
    for (const k of keys.data?.keys ?? []) m.set(k.id, k.name);
    return m;
  }, [keys.data, me]);
  const tenantName = useMemo(() => {
    const m = new Map<string, string>([[me.tenant.id, me.tenant.name]]);
    for (const t of tenants.data?.tenants ?? []) m.set(t.id, t.name);
    return m;
  }, [tenants.data, me]);
  const actions = useMemo(() => [...new Set([...ACTION_HINTS, ...distinctActions(entries ?? [])])].sort(), [entries]);

  const set = <K extends keyof Form>(k: K, v: Form[K]) => setForm({ ...form, [k]: v });
  const sortedKeys = useMemo(() => [...(keys.data?.keys ?? [])].sort((a, b) => a.name.localeCompare(b.name)), [keys.data]);

  return (
    <section>
      <PageHeader title="Audit trail">
        <button
          type="button"
          class="secondary"
          disabled={exporting.busy}
          aria-busy={exporting.busy}
          onClick={() =>
            exporting.run(() => download(`/api/v1/audit/export${auditQuery(applied.filters)}`, exportFilename()))
          }
        >
          Export JSON lines
        </button>
        {isAdmin && (
          <button
            type="button"
            class="secondary"
            disabled={verifying.busy}
            aria-busy={verifying.busy}
            onClick={async () => {
              setVerification(null);
              const v = await verifying.run(() => api<AuditVerification>("GET", "/api/v1/audit/verify"));
              if (v) setVerification(v);
            }}
          >
            {verifying.busy ? "Verifying…" : "Verify chain"}
          </button>
        )}
      </PageHeader>
      <p class="muted">
        Every call that changes something, and every refused one, {isAdmin ? "across all tenants" : `in ${me.tenant.name}`}.
        Entries are chained by hashes, so an edited or deleted entry is detected. Oldest first.
      </p>
      <ErrorBox error={exporting.error} title="The export failed" />
      <ErrorBox error={verifying.error} title="The chain could not be verified" />
      {verification && <VerifyResult v={verification} onClose={() => setVerification(null)} />}

      <form
        class="card"
        aria-label="Audit filters"
        onSubmit={(e) => {
          e.preventDefault();
          apply(form);
        }}
      >
        <div class="row">
          <label for="audit-action">
            Action starts with
            <input
              id="audit-action"
              list="audit-actions"
              autocomplete="off"
              placeholder="e.g. POST /api/v1/keys or auth."
              value={form.action}
              onInput={(e) => set("action", inputValue(e))}
            />
            <datalist id="audit-actions">
              {actions.map((a) => (
                <option value={a} />
              ))}
            </datalist>
          </label>
          <label for="audit-outcome">
            Outcome
            <select id="audit-outcome" value={form.outcome} onChange={(e) => set("outcome", inputValue(e) as Outcome)}>
              <option value="">any</option>
              <option value="success">success</option>
              <option value="denied">denied</option>
              <option value="failed">failed</option>
            </select>
          </label>
          <label for="audit-key">
            Key
            {keys.data ? (
              <select id="audit-key" value={form.key} onChange={(e) => set("key", inputValue(e))}>
                <option value="">any</option>
                {sortedKeys.map((k) => (
                  <option value={k.id}>
                    {k.name} ({k.role}
                    {isAdmin ? `, ${tenantName.get(k.tenant_id) ?? k.tenant_id.slice(0, 8)}` : ""})
                  </option>
                ))}
              </select>
            ) : (
              <input
                id="audit-key"
                autocomplete="off"
                placeholder="key id"
                value={form.key}
                onInput={(e) => set("key", inputValue(e))}
              />
            )}
          </label>
          {isAdmin && (
            <label for="audit-tenant">
              Tenant
              {tenants.data ? (
                <select id="audit-tenant" value={form.tenant} onChange={(e) => set("tenant", inputValue(e))}>
                  <option value="">any</option>
                  {tenants.data.tenants.map((t) => (
                    <option value={t.id}>{t.name}</option>
                  ))}
                </select>
              ) : (
                <input
                  id="audit-tenant"
                  autocomplete="off"
                  placeholder="tenant id"
                  value={form.tenant}
                  onInput={(e) => set("tenant", inputValue(e))}
                />
              )}
            </label>
          )}
        </div>
        <div class="row">
          <label for="audit-period">
            Period
            <select
              id="audit-period"
              value={form.period}
              onChange={(e) => {
                const period = inputValue(e);
                // Starting a custom range from the period shown so far.
                if (period === "custom" && !form.since) {
                  const r = periodRange(form.period, { since: "", until: "" });
                  setForm({ ...form, period, since: r.since != null ? msToLocalInput(r.since) : "" });
                } else set("period", period);
              }}
            >
              {PERIODS.map((p) => (
                <option value={p.id}>{p.label}</option>
              ))}
            </select>
          </label>
          {form.period === "custom" && (
            <>
              <label for="audit-since">
                From (inclusive)
                <input id="audit-since" type="datetime-local" value={form.since} onInput={(e) => set("since", inputValue(e))} />
              </label>
              <label for="audit-until">
                Until (exclusive)
                <input id="audit-until" type="datetime-local" value={form.until} onInput={(e) => set("until", inputValue(e))} />
              </label>
            </>
          )}
          <label for="audit-page-size">
            Entries per page
            <select id="audit-page-size" value={String(form.pageSize)} onChange={(e) => set("pageSize", Number(inputValue(e)))}>
              {PAGE_SIZES.map((n) => (
                <option value={String(n)}>{n}</option>
              ))}
            </select>
          </label>
        </div>
        <div class="btn-row">
          <button type="submit" disabled={loading}>
            Apply filters
          </button>
          <button
            type="button"
            class="secondary"
            onClick={() => {
              setForm(DEFAULT_FORM);
              apply(DEFAULT_FORM);
            }}
          >
            Reset
          </button>
        </div>
      </form>

      <ErrorBox error={error} title="The audit trail could not be loaded" />
      {loading && entries === null && <Loading what="Loading the audit trail" />}
      {entries && entries.length === 0 && (
        <Empty title="No entries match">
          <p>Try a longer period or fewer filters.</p>
        </Empty>
      )}
      {entries && entries.length > 0 && (
        <>
          <p class="muted small" role="status">
            {entries.length.toLocaleString()} {entries.length === 1 ? "entry" : "entries"} shown
            {more ? "; there are more" : ""}.
          </p>
          <div class="table-wrap">
            <table class="audit-table data-table">
              <caption class="sr-only">Audit entries, oldest first</caption>
              <thead>
                <tr>
                  <th scope="col">Time</th>
                  <th scope="col">Action</th>
                  <th scope="col">Outcome</th>
                  <th scope="col">Role</th>
                  <th scope="col">Key</th>
                  {isAdmin && <th scope="col">Tenant</th>}
                  <th scope="col">Source</th>
                  <th scope="col">Target</th>
                  <th scope="col">Details</th>
                </tr>
              </thead>
              <tbody>
                {entries.map((e) => (
                  <tr key={e.seq}>
                    <td class="nowrap">{when(e.at)}</td>
                    <td class="nowrap">
                      <code>{e.action}</code>
                    </td>
                    <td>
                      <Badge kind={outcomeKind(e.outcome)}>{e.outcome}</Badge>
                    </td>
                    <td>{e.role ?? <span class="muted">–</span>}</td>
                    <td>
                      {e.key_id ? (
                        <span title={`key ${e.key_id}`}>{keyName.get(e.key_id) ?? <code class="small">{e.key_id.slice(0, 8)}…</code>}</span>
                      ) : (
                        <span class="muted">none</span>
                      )}
                    </td>
                    {isAdmin && (
                      <td>
                        {e.tenant_id ? (
                          <span title={`tenant ${e.tenant_id}`}>
                            {tenantName.get(e.tenant_id) ?? <code class="small">{e.tenant_id.slice(0, 8)}…</code>}
                          </span>
                        ) : (
                          <span class="muted">none</span>
                        )}
                      </td>
                    )}
                    <td>{e.source ?? <span class="muted">–</span>}</td>
                    <td class="target">{e.target ?? <span class="muted">–</span>}</td>
                    <td>
                      <details>
                        <summary>#{e.seq}</summary>
                        <pre class="code audit-detail">{prettyDetail(e.detail)}</pre>
                        <p class="small mono break">
                          id {e.id}
                          <br />
                          hash {e.hash}
                        </p>
                      </details>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {more && (
            <button type="button" class="secondary load-more" onClick={loadMore} disabled={loading} aria-busy={loading}>
              {loading ? "Loading…" : `Load ${applied.pageSize} more`}
            </button>
          )}
        </>
      )}
    </section>
  );
}

function VerifyResult({ v, onClose }: { v: AuditVerification; onClose: () => void }) {
  return (
    <div class={`card verify ${v.ok ? "verify-ok" : "verify-bad"}`} role="status">
      <p>
        <Badge kind={v.ok ? "ok" : "bad"}>{v.ok ? "chain intact" : "chain broken"}</Badge>{" "}
        {v.entries.toLocaleString()} {v.entries === 1 ? "entry" : "entries"} checked
        {v.head ? `, up to entry #${v.head.seq}` : ""}.
      </p>
      {v.head && (
        <p class="small mono break">
          head hash {v.head.hash}
        </p>
      )}
      {v.problems.length > 0 && (
        <>
          <p>
            <strong>Problems found:</strong>
          </p>
          <ul>
            {v.problems.map((p) => (
              <li>{p}</li>
            ))}
          </ul>
        </>
      )}
      <button type="button" class="secondary small" onClick={onClose}>
        Close
      </button>
    </div>
  );
}

