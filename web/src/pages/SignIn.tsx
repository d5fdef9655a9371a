import { useState } from "preact/hooks";
import { api, session } from "../api";
import { ErrorBox } from "../components/ui";
import type { Me } from "../types";

/** Sign in with an API key: checked against the server, then kept in session storage. */
export function SignIn({ onSignedIn, notice }: { onSignedIn: (me: Me) => void; notice?: string }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);
  return (
    <main class="signin" id="main">
      <h1>aiaas console</h1>
      <p class="muted">Sign in with an API key. It stays in this browser tab only and is forgotten when you sign out or close the tab.</p>
      {notice && <p class="notice" role="status">{notice}</p>}
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          const k = key.trim();
          if (!k) {
            setError(new Error("Enter an API key (it starts with aiaas_)."));
            return;
          }
          setBusy(true);
          setError(undefined);
          try {
            const me = await api<Me>("GET", "/api/v1/me", undefined, { key: k });
            session.signIn(k);
            setKey("");
            onSignedIn(me);
          } catch (err) {
            setError(err);
          } finally {
            setBusy(false);
          }
        }}
      >
        <label>
          API key
          <input
            type="password"
            name="api-key"
            autocomplete="off"
            spellcheck={false}
            placeholder="aiaas_…"
            value={key}
            onInput={(e) => setKey((e.target as HTMLInputElement).value)}
            autoFocus
          />
        </label>
        <ErrorBox error={error} />
        <button type="submit" disabled={busy} aria-busy={busy}>
          Sign in
        </button>
      </form>
      <p class="muted small">
        No key? The admin key is printed once when <code>aiaas serve</code> first starts; an owner or admin can create more under Keys.
      </p>
    </main>
  );
}
