// API keys: list, create (the secret shown once), edit limits and IP allow-list, revoke.
// Owners manage their tenant's keys; admins every tenant's.

import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api } from "../api";
import { Badge, CopyButton, Empty, ErrorBox, Loading, PageHeader } from "../components/ui";
import { when } from "../format";
import { useAction, useApi } from "../hooks";
import {
  KeyStatus,
  LIMIT_FIELDS,
  LimitsForm,
  ROLES,
  describeLimits,
  describeList,
  expiresInSecs,
  hasLimits,
  keyStatus,
  limitsFromForm,
  limitsToForm,
  parseList,
  roleRank,
  rolesCreatableBy,
} from "../keys";
import { can, useMe } from "../me";
import type { ApiKey, Me, Tenant } from "../types";
import { TenantPrivacyForm } from "./Tenants";

/** POST /api/v1/keys answers the key with its secret, this once. */
type CreatedKey = ApiKey & { secret: string };

const STATUS_BADGE: Record<KeyStatus, "ok" | "bad" | "warn"> = { active: "ok", revoked: "bad", expired: "warn" };

function inputValue(e: Event): string {
  return (e.target as HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement).value;
}

/** The four limits as a fieldset (shared with the Tenants page). */
export function LimitsFields({
  value,
  onChange,
  legend,
  idPrefix,
  hint,
}: {
  value: LimitsForm;
  onChange: (v: LimitsForm) => void;
  legend: string;
  idPrefix: string;
  hint?: string;
}) {
  return (
    <fieldset>
      <legend>{legend}</legend>
      <div class="row">
        {LIMIT_FIELDS.map((f) => (
          <label for={`${idPrefix}-${f.id}`}>
            {f.label}
            <input
              id={`${idPrefix}-${f.id}`}
              type="text"
              inputMode="numeric"
              autocomplete="off"
              placeholder="no limit"
              value={value[f.id]}
              onInput={(e) => onChange({ ...value, [f.id]: inputValue(e) })}
            />
          </label>
        ))}
      </div>
      <p class="muted small">
        {hint ?? "Leave a field empty for no limit. Burst needs requests per minute. Token limits count prompt and completion tokens of LLM and embedding calls."}
      </p>
    </fieldset>
  );
}

export function KeysPage() {
  const me = useMe();
  const isAdmin = can(me, "manage_tenants");
  const keys = useApi<{ keys: ApiKey[] }>("/api/v1/keys");
  const tenants = useApi<{ tenants: Tenant[] }>(isAdmin ? "/api/v1/tenants" : null);
  const [showCreate, setShowCreate] = useState(false);
  const [created, setCreated] = useState<CreatedKey | null>(null);
  const [editing, setEditing] = useState<string | null>(null);
  const [confirming, setConfirming] = useState<string | null>(null);
  const [hideInactive, setHideInactive] = useState(false);
  const revoke = useAction();

  const tenantName = useMemo(() => {
    const m = new Map<string, string>([[me.tenant.id, me.tenant.name]]);
    for (const t of tenants.data?.tenants ?? []) m.set(t.id, t.name);
    return m;
  }, [tenants.data, me]);

  const now = Date.now();
  const all = useMemo(() => {
    const order: Record<KeyStatus, number> = { active: 0, expired: 1, revoked: 2 };
    return [...(keys.data?.keys ?? [])].sort(
      (a, b) => order[keyStatus(a, now)] - order[keyStatus(b, now)] || b.created_at - a.created_at,
    );
  }, [keys.data]);
  const shown = hideInactive ? all.filter((k) => keyStatus(k, now) === "active") : all;
  const editingKey = all.find((k) => k.id === editing);

  const mayManage = (k: ApiKey) => roleRank(k.role) <= roleRank(me.key.role);

  return (
    <section>
      <PageHeader title="API keys">
        <button type="button" aria-expanded={showCreate} onClick={() => setShowCreate(!showCreate)}>
          {showCreate ? "Close the form" : "New key"}
        </button>
        <button type="button" class="secondary" onClick={keys.reload} disabled={keys.loading}>
          Refresh
        </button>
      </PageHeader>
      <p class="muted">
        {isAdmin ? "Keys of every tenant." : `Keys of your tenant, ${me.tenant.name}.`} A key's secret is shown once, when it
        is created; the server keeps only a hash of it.
      </p>

      {!isAdmin && <OwnTenantPrivacy tenant={me.tenant} />}

      {created && <SecretBox created={created} tenant={tenantName.get(created.tenant_id)} onDismiss={() => setCreated(null)} />}

      {showCreate && (
        <CreateKeyForm
          me={me}
          isAdmin={isAdmin}
          tenants={tenants.data?.tenants ?? null}
          tenantsError={tenants.error}
          onCreated={(k) => {
            setCreated(k);
            setShowCreate(false);
            keys.reload();
          }}
          onCancel={() => setShowCreate(false)}
        />
      )}

      {editingKey && (
        <EditKeyForm
          key={editingKey.id}
          apiKey={editingKey}
          onSaved={() => {
            setEditing(null);
            keys.reload();
          }}
          onCancel={() => setEditing(null)}
        />
      )}

      <ErrorBox error={keys.error} title="The keys could not be loaded" />
      <ErrorBox error={revoke.error} title="The key was not revoked" />
      {keys.loading && !keys.data && <Loading what="Loading keys" />}
      {keys.data && all.length === 0 && (
        <Empty title="No keys yet">
          <p>Create a key for each application or person that calls the API.</p>
        </Empty>
      )}
      {keys.data && all.length > 0 && (
        <>
          <label class="inline-check">
            <input type="checkbox" checked={hideInactive} onChange={(e) => setHideInactive((e.target as HTMLInputElement).checked)} />
            Hide revoked and expired keys
          </label>
          {shown.length === 0 ? (
            <Empty title="No active keys">
              <p>Every key is revoked or expired. Create a new one, or show the inactive keys.</p>
            </Empty>
          ) : (
            <div class="table-wrap">
              <table class="keys-table data-table">
                <caption class="sr-only">API keys</caption>
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Role</th>
                    {isAdmin && <th scope="col">Tenant</th>}
                    <th scope="col">Models</th>
                    <th scope="col">IP addresses</th>
                    <th scope="col">Expires</th>
                    <th scope="col">Limits</th>
                    <th scope="col">Status</th>
                    <th scope="col">Created</th>
                    <th scope="col">
                      <span class="sr-only">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {shown.map((k) => {
                    const status = keyStatus(k, now);
                    const mine = k.id === me.key.id;
                    return (
                      <tr key={k.id}>
                        <th scope="row">
                          {k.name}
                          {mine && (
                            <>
                              {" "}
                              <Badge kind="info">this key</Badge>
                            </>
                          )}
                          {/* The random end of the id: its start is a timestamp, shared by keys made together. */}
                          <div class="muted small mono" title={`key id ${k.id}`}>
                            …{k.id.slice(-12)}
                          </div>
                        </th>
                        <td>{k.role}</td>
                        {isAdmin && <td>{tenantName.get(k.tenant_id) ?? <code>{k.tenant_id}</code>}</td>}
                        <td>{describeList(k.allowed_models, "all")}</td>
                        <td>{describeList(k.allowed_ips, "any")}</td>
                        <td>{k.expires_at ? when(k.expires_at) : "never"}</td>
                        <td>{describeLimits(k.limits)}</td>
                        <td>
                          <Badge kind={STATUS_BADGE[status]}>{status}</Badge>
                          {status === "revoked" && <div class="muted small">{when(k.revoked_at)}</div>}
                        </td>
                        <td>{when(k.created_at)}</td>
                        <td class="actions-cell">
                          {status === "revoked" ? null : !mayManage(k) ? (
                            <span class="muted small">higher role</span>
                          ) : confirming === k.id ? (
                            <RevokeConfirm
                              apiKey={k}
                              mine={mine}
                              busy={revoke.busy}
                              onCancel={() => setConfirming(null)}
                              onConfirm={async () => {
                                const done = await revoke.run(() => api<ApiKey>("DELETE", `/api/v1/keys/${encodeURIComponent(k.id)}`));
                                if (done) {
                                  setConfirming(null);
                                  if (editing === k.id) setEditing(null);
                                  keys.reload();
                                }
                              }}
                            />
                          ) : (
                            <div class="btn-row">
                              <button
                                type="button"
                                class="secondary small"
                                aria-label={`Edit limits and IP addresses of ${k.name}`}
                                onClick={() => setEditing(k.id)}
                              >
                                Edit
                              </button>
                              <button
                                type="button"
                                class="secondary small danger-text"
                                aria-label={`Revoke ${k.name}`}
                                onClick={() => {
                                  revoke.setError(undefined);
                                  setConfirming(k.id);
                                }}
                              >
                                Revoke
                              </button>
                            </div>
                          )}
                        </td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </div>
          )}
        </>
      )}
    </section>
  );
}

function RevokeConfirm({
  apiKey,
  mine,
  busy,
  onConfirm,
  onCancel,
}: {
  apiKey: ApiKey;
  mine: boolean;
  busy: boolean;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const cancel = useRef<HTMLButtonElement>(null);
  useEffect(() => cancel.current?.focus(), []);
  return (
    <div class="confirm" role="group" aria-label={`Confirm revoking ${apiKey.name}`}>
      <p class="small">
        Revoke <strong>{apiKey.name}</strong>? Calls with it fail at once; this cannot be undone.
        {mine && <strong> You are signed in with this key: you will be signed out.</strong>}
      </p>
      <div class="btn-row">
        <button type="button" class="danger small" onClick={onConfirm} disabled={busy} aria-busy={busy}>
          Yes, revoke
        </button>
        <button type="button" class="secondary small" ref={cancel} onClick={onCancel} disabled={busy}>
          Cancel
        </button>
      </div>
    </div>
  );
}

/** The new key's secret, shown this once. */
function SecretBox({ created, tenant, onDismiss }: { created: CreatedKey; tenant?: string; onDismiss: () => void }) {
  const box = useRef<HTMLElement>(null);
  useEffect(() => box.current?.focus(), [created.id]);
  return (
    <section class="card secret-box" tabIndex={-1} ref={box} aria-labelledby="secret-title">
      <h2 id="secret-title">
        Key “{created.name}” created ({created.role}
        {tenant ? `, tenant ${tenant}` : ""})
      </h2>
      <p class="secret-warning">
        <strong>Copy the secret now: it will not be shown again.</strong> The server keeps only a hash of it. If it is lost,
        revoke the key and create a new one.
      </p>
      <div class="secret">
        <code aria-label="The new key's secret">{created.secret}</code>
        <CopyButton text={created.secret} label="Copy secret" />
      </div>
      <p class="muted small">
        Use it as <code>Authorization: Bearer …</code>, or as the <code>api_key</code> of an OpenAI client.
      </p>
      <button type="button" onClick={onDismiss}>
        I have saved it, dismiss
      </button>
    </section>
  );
}

function CreateKeyForm({
  me,
  isAdmin,
  tenants,
  tenantsError,
  onCreated,
  onCancel,
}: {
  me: Me;
  isAdmin: boolean;
  tenants: Tenant[] | null;
  tenantsError: unknown;
  onCreated: (k: CreatedKey) => void;
  onCancel: () => void;
}) {
  const roles = rolesCreatableBy(me.key.role);
  const [name, setName] = useState("");
  const [role, setRole] = useState<string>(roles.includes("developer") ? "developer" : roles[roles.length - 1]);
  const [tenant, setTenant] = useState(me.tenant.id);
  const [models, setModels] = useState("");
  const [ips, setIps] = useState("");
  const [days, setDays] = useState("");
  const [limits, setLimits] = useState<LimitsForm>(limitsToForm(null));
  const act = useAction();
  const first = useRef<HTMLInputElement>(null);
  useEffect(() => first.current?.focus(), []);
  const restricted = me.key.allowed_models;

  return (
    <form
      class="card"
      aria-labelledby="create-key-title"
      onSubmit={async (e) => {
        e.preventDefault();
        const k = await act.run(async () => {
          if (!name.trim()) throw new Error("Give the key a name (e.g. the application that will use it).");
          const body: Record<string, unknown> = { name: name.trim(), role };
          if (isAdmin) body.tenant = tenant;
          const allowedModels = parseList(models);
          if (allowedModels.length > 0) body.allowed_models = allowedModels;
          const allowedIps = parseList(ips);
          if (allowedIps.length > 0) body.allowed_ips = allowedIps;
          const secs = expiresInSecs(days);
          if (secs !== undefined) body.expires_in_secs = secs;
          const l = limitsFromForm(limits);
          if (hasLimits(l)) body.limits = l;
          return api<CreatedKey>("POST", "/api/v1/keys", body);
        });
        if (k) onCreated(k);
      }}
    >
      <h2 id="create-key-title" class="form-title">New key</h2>
      <div class="row">
        <label for="key-name">
          Name
          <input
            id="key-name"
            ref={first}
            required
            maxLength={100}
            autocomplete="off"
            placeholder="e.g. support-bot"
            value={name}
            onInput={(e) => setName(inputValue(e))}
          />
        </label>
        <label for="key-role">
          Role
          <select id="key-role" value={role} onChange={(e) => setRole(inputValue(e))}>
            {ROLES.filter((r) => roles.includes(r.id)).map((r) => (
              <option value={r.id}>
                {r.label}: {r.hint}
              </option>
            ))}
          </select>
        </label>
        {isAdmin && (
          <label for="key-tenant">
            Tenant
            {tenants ? (
              <select id="key-tenant" value={tenant} onChange={(e) => setTenant(inputValue(e))}>
                {tenants.map((t) => (
                  <option value={t.id}>{t.name}</option>
                ))}
              </select>
            ) : (
              <input
                id="key-tenant"
                autocomplete="off"
                placeholder="tenant id or name"
                value={tenant}
                onInput={(e) => setTenant(inputValue(e))}
              />
            )}
          </label>
        )}
      </div>
      {isAdmin && <ErrorBox error={tenantsError} title="The tenants could not be loaded (enter a tenant id or name)" />}
      <div class="row">
        <label for="key-models">
          Allowed models
          <input
            id="key-models"
            autocomplete="off"
            placeholder={restricted ? restricted.join(", ") : "all models"}
            aria-describedby="key-models-hint"
            value={models}
            onInput={(e) => setModels(inputValue(e))}
          />
          <span id="key-models-hint" class="muted small hint">
            {restricted
              ? `Comma-separated; your key is limited to ${restricted.join(", ") || "no models"}, so name some of those.`
              : "Comma-separated model names; empty for all of the tenant's models."}
          </span>
        </label>
        <label for="key-ips">
          Allowed IP addresses
          <input
            id="key-ips"
            autocomplete="off"
            placeholder="any address"
            aria-describedby="key-ips-hint"
            value={ips}
            onInput={(e) => setIps(inputValue(e))}
          />
          <span id="key-ips-hint" class="muted small hint">
            Comma-separated addresses or CIDR ranges (10.0.0.0/8); empty for any.
          </span>
        </label>
        <label for="key-expiry">
          Expires in (days)
          <input
            id="key-expiry"
            type="text"
            inputMode="decimal"
            autocomplete="off"
            placeholder="never"
            aria-describedby="key-expiry-hint"
            value={days}
            onInput={(e) => setDays(inputValue(e))}
          />
          <span id="key-expiry-hint" class="muted small hint">
            Empty for a key that does not expire.
          </span>
        </label>
      </div>
      <LimitsFields
        legend="Limits of this key (optional)"
        idPrefix="new-key"
        value={limits}
        onChange={setLimits}
        hint="Leave a field empty for no limit beyond the tenant's. Burst needs requests per minute."
      />
      <ErrorBox error={act.error} title="The key was not created" />
      <div class="btn-row">
        <button type="submit" disabled={act.busy} aria-busy={act.busy}>
          Create key
        </button>
        <button type="button" class="secondary" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function EditKeyForm({ apiKey, onSaved, onCancel }: { apiKey: ApiKey; onSaved: () => void; onCancel: () => void }) {
  const [ips, setIps] = useState((apiKey.allowed_ips ?? []).join(", "));
  const [models, setModels] = useState((apiKey.allowed_models ?? []).join(", "));
  const [limits, setLimits] = useState<LimitsForm>(limitsToForm(apiKey.limits));
  const act = useAction();
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), []);
  return (
    <form
      class="card"
      aria-labelledby="edit-key-title"
      onSubmit={async (e) => {
        e.preventDefault();
        const saved = await act.run(() => {
          // Both replace the key's current values: an empty list allows every address.
          const body: Record<string, unknown> = { limits: limitsFromForm(limits) };
          const list = parseList(ips);
          if (list.length > 0) body.allowed_ips = list;
          // Empty: every model (null); otherwise exactly these.
          const allowed = parseList(models);
          body.allowed_models = allowed.length > 0 ? allowed : null;
          return api<ApiKey>("PUT", `/api/v1/keys/${encodeURIComponent(apiKey.id)}`, body);
        });
        if (saved) onSaved();
      }}
    >
      <h2 id="edit-key-title" class="form-title" tabIndex={-1} ref={heading}>
        Edit key “{apiKey.name}”
      </h2>
      <p class="id-cell small">
        Key id <code>{apiKey.id}</code> <CopyButton text={apiKey.id} label="Copy id" />
      </p>
      <p class="muted small">
        Expiry is fixed when a key is created ({apiKey.expires_at ? `expires ${new Date(apiKey.expires_at).toLocaleString()}` : "never expires"}); to
        change it, create a new key and revoke this one.
      </p>
      <label for="edit-key-models">
        Allowed models
        <input
          id="edit-key-models"
          autocomplete="off"
          placeholder="every model"
          aria-describedby="edit-key-models-hint"
          value={models}
          onInput={(e) => setModels(inputValue(e))}
        />
        <span id="edit-key-models-hint" class="muted small hint">
          Comma-separated model names; empty for every model of the tenant.
        </span>
      </label>
      <label for="edit-key-ips">
        Allowed IP addresses
        <input
          id="edit-key-ips"
          autocomplete="off"
          placeholder="any address"
          aria-describedby="edit-key-ips-hint"
          value={ips}
          onInput={(e) => setIps(inputValue(e))}
        />
        <span id="edit-key-ips-hint" class="muted small hint">
          Comma-separated addresses or CIDR ranges; empty for any.
        </span>
      </label>
      <LimitsFields legend="Limits" idPrefix="edit-key" value={limits} onChange={setLimits} />
      <ErrorBox error={act.error} title="The key was not changed" />
      <div class="btn-row">
        <button type="submit" disabled={act.busy} aria-busy={act.busy}>
          Save
        </button>
        <button type="button" class="secondary" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

/** An owner's view of its own tenant's PII policy (admins set every tenant's under Tenants). */
function OwnTenantPrivacy({ tenant }: { tenant: Tenant }) {
  const [current, setCurrent] = useState(tenant);
  const [editing, setEditing] = useState(false);
  const describe = (m: string | null) => m ?? "off";
  if (editing) {
    return (
      <TenantPrivacyForm
        tenant={current}
        onSaved={async () => {
          const me = await api<Me>("GET", "/api/v1/me");
          setCurrent(me.tenant);
          setEditing(false);
        }}
        onCancel={() => setEditing(false)}
      />
    );
  }
  return (
    <section class="card" aria-labelledby="own-privacy-title">
      <h2 id="own-privacy-title">PII policy of your tenant</h2>
      <p>
        Model inputs: <Badge>{describe(current.pii_inputs)}</Badge> · model outputs: <Badge>{describe(current.pii_outputs)}</Badge>
      </p>
      <button type="button" class="secondary" onClick={() => setEditing(true)}>
        Edit PII policy
      </button>
    </section>
  );
}
