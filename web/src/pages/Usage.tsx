// Usage of LLMs and embedding models: tokens and requests per day, by model, key or tenant.

import { useMemo, useState } from "preact/hooks";
import { Empty, ErrorBox, Loading, PageHeader, Stat, Tabs } from "../components/ui";
import { LineChart, color } from "../components/chart";
import { useApi } from "../hooks";
import { can, useMe } from "../me";
import type { ApiKey, Tenant } from "../types";
import {
  GroupBy,
  METRICS,
  Metric,
  OTHER,
  UsageRow,
  dailySeries,
  dayToLocalSeconds,
  grandTotals,
  periodStart,
  since,
  todayUtc,
  totalsBy,
} from "../usage";

const PERIODS: { days: number | null; label: string }[] = [
  { days: 7, label: "Last 7 days" },
  { days: 30, label: "Last 30 days" },
  { days: 90, label: "Last 90 days" },
  { days: null, label: "All time" },
];

const fmt = (n: number) => n.toLocaleString();

export function UsagePage() {
  const me = useMe();
  const isAdmin = can(me, "manage_tenants");
  const usage = useApi<{ usage: UsageRow[] }>("/api/v1/usage");
  // Names for ids, where this key may list them (ids are shown otherwise).
  const keys = useApi<{ keys: ApiKey[] }>(can(me, "manage_keys") ? "/api/v1/keys" : null);
  const tenants = useApi<{ tenants: Tenant[] }>(isAdmin ? "/api/v1/tenants" : null);
  const [by, setBy] = useState<GroupBy>("model");
  const [metric, setMetric] = useState<Metric>("tokens");
  const [period, setPeriod] = useState<string>("30");

  const days = period === "all" ? null : Number(period);
  const rows = usage.data?.usage ?? [];
  const from = periodStart(days);
  const inPeriod = useMemo(() => since(rows, from), [usage.data, from]);
  const totals = useMemo(() => totalsBy(inPeriod, by), [inPeriod, by]);
  const grand = useMemo(() => grandTotals(inPeriod), [inPeriod]);
  const daily = useMemo(
    () => dailySeries(inPeriod, by, metric, { from, to: from === null ? null : todayUtc(), maxSeries: 7 }),
    [inPeriod, by, metric, from],
  );

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

  const label = (group: string, gathers?: number): string => {
    if (group === OTHER) return `${gathers ?? 0} more`;
    if (by === "key") return keyName.get(group) ?? `key ${group.slice(0, 8)}…`;
    if (by === "tenant") return tenantName.get(group) ?? `tenant ${group.slice(0, 8)}…`;
    return group;
  };

  const x = useMemo(() => daily.days.map(dayToLocalSeconds), [daily]);
  const series = useMemo(
    () => daily.series.map((s, i) => ({ label: label(s.group, s.gathers), values: s.values, color: color(i) })),
    [daily, keyName, tenantName],
  );
  const metricLabel = METRICS.find((m) => m.id === metric)!.label;
  const groupTabs: { id: GroupBy; label: string }[] = [
    { id: "model", label: "By model" },
    { id: "key", label: "By key" },
    ...(isAdmin ? [{ id: "tenant" as GroupBy, label: "By tenant" }] : []),
  ];
  const groupHeading = by === "model" ? "Model" : by === "key" ? "Key" : "Tenant";

  return (
    <section>
      <PageHeader title="Usage">
        <button type="button" class="secondary" onClick={usage.reload} disabled={usage.loading}>
          Refresh
        </button>
      </PageHeader>
      <p class="muted">
        Requests and tokens of LLM and embedding calls per UTC day
        {isAdmin ? ", for every tenant" : me.key.role === "inference" ? ", for this key" : `, for ${me.tenant.name}`}.
      </p>
      <ErrorBox error={usage.error} title="Usage could not be loaded" />
      {usage.loading && !usage.data && <Loading what="Loading usage" />}
      {usage.data && rows.length === 0 && (
        <Empty title="No usage yet">
          <p>
            Usage is recorded for LLM and embedding calls (<code>/v1/chat/completions</code>, <code>/v1/completions</code>,{" "}
            <code>/v1/embeddings</code>). Try a model in the Playground, then come back.
          </p>
        </Empty>
      )}
      {usage.data && rows.length > 0 && (
        <>
          <div class="card">
            <div class="row usage-controls">
              <label for="usage-period">
                Period
                <select id="usage-period" value={period} onChange={(e) => setPeriod((e.target as HTMLSelectElement).value)}>
                  {PERIODS.map((p) => (
                    <option value={p.days === null ? "all" : String(p.days)}>{p.label}</option>
                  ))}
                </select>
              </label>
              <label for="usage-metric">
                Chart
                <select id="usage-metric" value={metric} onChange={(e) => setMetric((e.target as HTMLSelectElement).value as Metric)}>
                  {METRICS.map((m) => (
                    <option value={m.id}>{m.label}</option>
                  ))}
                </select>
              </label>
            </div>
            <div class="stats">
              <Stat label="requests" value={fmt(grand.requests)} />
              <Stat label="prompt tokens" value={fmt(grand.prompt_tokens)} />
              <Stat label="completion tokens" value={fmt(grand.completion_tokens)} />
              <Stat label="tokens in all" value={fmt(grand.tokens)} />
            </div>
            <Tabs label="Group usage" tabs={groupTabs} value={by} onChange={setBy} />
            {inPeriod.length === 0 ? (
              <Empty title="No usage in this period">
                <p>Pick a longer period to see earlier usage.</p>
              </Empty>
            ) : (
              <>
                <h2 class="sr-only">{metricLabel} per day</h2>
                <LineChart
                  title={`${metricLabel} per day, ${groupTabs.find((t) => t.id === by)!.label.toLowerCase()}`}
                  x={x}
                  series={series}
                  xLabel="day"
                  yLabel={metric === "requests" ? "requests" : "tokens"}
                  timeAxis
                />
              </>
            )}
          </div>

          {inPeriod.length > 0 && (
            <>
              <h2>Totals {by === "model" ? "by model" : by === "key" ? "by key" : "by tenant"}</h2>
              <div class="table-wrap">
                <table class="data-table">
                  <thead>
                    <tr>
                      <th scope="col">{groupHeading}</th>
                      <th scope="col" class="num">
                        Requests
                      </th>
                      <th scope="col" class="num">
                        Prompt tokens
                      </th>
                      <th scope="col" class="num">
                        Completion tokens
                      </th>
                      <th scope="col" class="num">
                        Tokens
                      </th>
                      <th scope="col" class="num">
                        Share of tokens
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {totals.map((t) => (
                      <tr key={t.group}>
                        <th scope="row">
                          {label(t.group)}
                          {by !== "model" && (
                            <div class="muted small mono" title={by === "key" ? "Key id" : "Tenant id"}>
                              {t.group}
                            </div>
                          )}
                        </th>
                        <td class="num">{fmt(t.requests)}</td>
                        <td class="num">{fmt(t.prompt_tokens)}</td>
                        <td class="num">{fmt(t.completion_tokens)}</td>
                        <td class="num">{fmt(t.tokens)}</td>
                        <td class="num">{grand.tokens ? `${((t.tokens / grand.tokens) * 100).toFixed(1)}%` : "–"}</td>
                      </tr>
                    ))}
                  </tbody>
                  <tfoot>
                    <tr>
                      <th scope="row">All</th>
                      <td class="num">{fmt(grand.requests)}</td>
                      <td class="num">{fmt(grand.prompt_tokens)}</td>
                      <td class="num">{fmt(grand.completion_tokens)}</td>
                      <td class="num">{fmt(grand.tokens)}</td>
                      <td class="num">{grand.tokens ? "100%" : "–"}</td>
                    </tr>
                  </tfoot>
                </table>
              </div>
            </>
          )}
        </>
      )}
    </section>
  );
}
