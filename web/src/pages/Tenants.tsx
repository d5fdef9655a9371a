// Tenants (admins): list, create, set limits, set the PII policies of model inputs and outputs.

import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api } from "../api";
import { Badge, CopyButton, Empty, ErrorBox, Loading, PageHeader } from "../components/ui";
import { when } from "../format";
import { useAction, useApi } from "../hooks";
import { LimitsForm, describeLimits, keyStatus, limitsFromForm, limitsToForm } from "../keys";
import { href } from "../router";
import type { ApiKey, Tenant } from "../types";
import { LimitsFields } from "./Keys";

type PiiMode = "off" | "mask" | "label" | "pseudonymise";

const PII_MODES: { id: PiiMode; label: string }[] = [
  { id: "off", label: "off: texts pass unchanged" },
  { id: "mask", label: "mask: keep a little, e.g. 138****5678, j***@example.com" },
  { id: "label", label: "label: replace with the kind, e.g. [PHONE]" },
  { id: "pseudonymise", label: "pseudonymise: a keyed token, e.g. [PHONE:1f3a9c0b7d2e]" },
];

function inputValue(e: Event): string {
  return (e.target as HTMLInputElement | HTMLSelectElement).value;
}

function PiiBadge({ mode }: { mode: string | null }) {
  return mode ? <Badge kind="info">{mode}</Badge> : <span class="muted">off</span>;
}

type Editing = { id: string; what: "limits" | "privacy" } | null;

export function TenantsPage() {
  const tenants = useApi<{ tenants: Tenant[] }>("/api/v1/tenants");
  const keys = useApi<{ keys: ApiKey[] }>("/api/v1/keys");
  const [editing, setEditing] = useState<Editing>(null);
  const [created, setCreated] = useState<Tenant | null>(null);

  const activeKeys = useMemo(() => {
    const m = new Map<string, number>();
    const now = Date.now();
    for (const k of keys.data?.keys ?? []) {
      if (keyStatus(k, now) === "active") m.set(k.tenant_id, (m.get(k.tenant_id) ?? 0) + 1);
    }
    return m;
  }, [keys.data]);

  const list = useMemo(() => [...(tenants.data?.tenants ?? [])].sort((a, b) => a.name.localeCompare(b.name)), [tenants.data]);
  const current = list.find((t) => t.id === editing?.id);

  return (
    <section>
      <PageHeader title="Tenants">
        <button type="button" class="secondary" onClick={tenants.reload} disabled={tenants.loading}>
          Refresh
        </button>
      </PageHeader>
      <p class="muted">
        Each tenant has its own data, models, keys and audit trail. Limits apply to all of a tenant's keys together; a
        key's own limits apply on top.
      </p>

      <CreateTenantForm
        onCreated={(t) => {
          setCreated(t);
          tenants.reload();
        }}
      />
      {created && (
        <p class="notice" role="status">
          Tenant <strong>{created.name}</strong> created. <a href={href("keys")}>Create its first key</a> (as owner, to let
          its people manage it).
        </p>
      )}

      {current && editing?.what === "limits" && (
        <TenantLimitsForm
          key={current.id}
          tenant={current}
          onSaved={() => {
            setEditing(null);
            tenants.reload();
          }}
          onCancel={() => setEditing(null)}
        />
      )}
      {current && editing?.what === "privacy" && (
        <TenantPrivacyForm
          key={current.id}
          tenant={current}
          onSaved={() => {
            setEditing(null);
            tenants.reload();
          }}
          onCancel={() => setEditing(null)}
        />
      )}

      <ErrorBox error={tenants.error} title="The tenants could not be loaded" />
      {tenants.loading && !tenants.data && <Loading what="Loading tenants" />}
      {tenants.data && list.length === 0 && <Empty title="No tenants yet">Create one above.</Empty>}
      {list.length > 0 && (
        <div class="table-wrap">
          <table class="data-table">
            <caption class="sr-only">Tenants</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Id</th>
                <th scope="col" class="num">
                  Active keys
                </th>
                <th scope="col">Limits</th>
                <th scope="col">PII in inputs</th>
                <th scope="col">PII in outputs</th>
                <th scope="col">Created</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {list.map((t) => (
                <tr key={t.id}>
                  <th scope="row">{t.name}</th>
                  <td>
                    <span class="id-cell">
                      <code class="small">{t.id}</code>
                      <CopyButton text={t.id} label="Copy id" />
                    </span>
                  </td>
                  <td class="num">{keys.data ? activeKeys.get(t.id) ?? 0 : "–"}</td>
                  <td>{describeLimits(t.limits)}</td>
                  <td>
                    <PiiBadge mode={t.pii_inputs} />
                  </td>
                  <td>
                    <PiiBadge mode={t.pii_outputs} />
                  </td>
                  <td>{when(t.created_at)}</td>
                  <td class="actions-cell">
                    <div class="btn-row">
                      <button
                        type="button"
                        class="secondary small"
                        aria-label={`Set the limits of ${t.name}`}
                        onClick={() => setEditing({ id: t.id, what: "limits" })}
                      >
                        Limits
                      </button>
                      <button
                        type="button"
                        class="secondary small"
                        aria-label={`Set the PII policy of ${t.name}`}
                        onClick={() => setEditing({ id: t.id, what: "privacy" })}
                      >
                        PII policy
                      </button>
                    </div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function CreateTenantForm({ onCreated }: { onCreated: (t: Tenant) => void }) {
  const [name, setName] = useState("");
  const act = useAction();
  return (
    <form
      class="card"
      aria-labelledby="create-tenant-title"
      onSubmit={async (e) => {
        e.preventDefault();
        const t = await act.run(() => {
          if (!name.trim()) throw new Error("Enter a name for the tenant.");
          return api<Tenant>("POST", "/api/v1/tenants", { name: name.trim() });
        });
        if (t) {
          setName("");
          onCreated(t);
        }
      }}
    >
      <h2 id="create-tenant-title" class="form-title">New tenant</h2>
      <div class="row">
        <label for="tenant-name">
          Name
          <input
            id="tenant-name"
            autocomplete="off"
            maxLength={64}
            placeholder="e.g. acme"
            aria-describedby="tenant-name-hint"
            value={name}
            onInput={(e) => setName(inputValue(e))}
          />
          <span id="tenant-name-hint" class="muted small hint">
            Letters, digits, '-', '_' or '.', starting with a letter or digit.
          </span>
        </label>
        <div class="form-end">
          <button type="submit" disabled={act.busy} aria-busy={act.busy}>
            Create tenant
          </button>
        </div>
      </div>
      <ErrorBox error={act.error} title="The tenant was not created" />
    </form>
  );
}

function useFocusOnMount<T extends HTMLElement>() {
  const ref = useRef<T>(null);
  useEffect(() => ref.current?.focus(), []);
  return ref;
}

function TenantLimitsForm({ tenant, onSaved, onCancel }: { tenant: Tenant; onSaved: () => void; onCancel: () => void }) {
  const [limits, setLimits] = useState<LimitsForm>(limitsToForm(tenant.limits));
  const act = useAction();
  const heading = useFocusOnMount<HTMLHeadingElement>();
  return (
    <form
      class="card"
      aria-labelledby="tenant-limits-title"
      onSubmit={async (e) => {
        e.preventDefault();
        const saved = await act.run(() =>
          api<Tenant>("PUT", `/api/v1/tenants/${encodeURIComponent(tenant.id)}/limits`, limitsFromForm(limits)),
        );
        if (saved) onSaved();
      }}
    >
      <h2 id="tenant-limits-title" class="form-title" tabIndex={-1} ref={heading}>
        Limits of tenant “{tenant.name}”
      </h2>
      <LimitsFields
        legend="Limits for all of the tenant's keys together"
        idPrefix="tenant-limits"
        value={limits}
        onChange={setLimits}
      />
      <ErrorBox error={act.error} title="The limits were not changed" />
      <div class="btn-row">
        <button type="submit" disabled={act.busy} aria-busy={act.busy}>
          Save limits
        </button>
        <button type="button" class="secondary" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

export function TenantPrivacyForm({ tenant, onSaved, onCancel }: { tenant: Tenant; onSaved: () => void; onCancel: () => void }) {
  const [inputs, setInputs] = useState<PiiMode>((tenant.pii_inputs as PiiMode | null) ?? "off");
  const [outputs, setOutputs] = useState<PiiMode>((tenant.pii_outputs as PiiMode | null) ?? "off");
  const act = useAction();
  const heading = useFocusOnMount<HTMLHeadingElement>();
  const toApi = (m: PiiMode) => (m === "off" ? null : m);
  return (
    <form
      class="card"
      aria-labelledby="tenant-privacy-title"
      onSubmit={async (e) => {
        e.preventDefault();
        const saved = await act.run(() =>
          api<Tenant>("PUT", `/api/v1/tenants/${encodeURIComponent(tenant.id)}/privacy`, {
            inputs: toApi(inputs),
            outputs: toApi(outputs),
          }),
        );
        if (saved) onSaved();
      }}
    >
      <h2 id="tenant-privacy-title" class="form-title" tabIndex={-1} ref={heading}>
        PII policy of tenant “{tenant.name}”
      </h2>
      <p class="muted small">
        Personal data (e-mail addresses, phone numbers, ID and bank card numbers, IP addresses) found in the texts the tenant's
        keys send to models, and in what models send back (streamed replies too), is rewritten this way.
      </p>
      <div class="row">
        <label for="pii-inputs">
          Model inputs
          <select id="pii-inputs" value={inputs} onChange={(e) => setInputs(inputValue(e) as PiiMode)}>
            {PII_MODES.map((m) => (
              <option value={m.id}>{m.label}</option>
            ))}
          </select>
        </label>
        <label for="pii-outputs">
          Model outputs
          <select id="pii-outputs" value={outputs} onChange={(e) => setOutputs(inputValue(e) as PiiMode)}>
            {PII_MODES.map((m) => (
              <option value={m.id}>{m.label}</option>
            ))}
          </select>
        </label>
      </div>
      <ErrorBox error={act.error} title="The PII policy was not changed" />
      <div class="btn-row">
        <button type="submit" disabled={act.busy} aria-busy={act.busy}>
          Save PII policy
        </button>
        <button type="button" class="secondary" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}
