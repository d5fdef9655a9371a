// The console's shell: sign-in, navigation by permission, and the page for the route.

import { useEffect, useState } from "preact/hooks";
import { api, messageOf, session, setUnauthorizedHandler } from "./api";
import { MeContext, can } from "./me";
import { href, navigate, useRoute } from "./router";
import type { Me, Permission } from "./types";
import { ErrorBox, Loading } from "./components/ui";
import { SignIn } from "./pages/SignIn";
import { ModelsPage, ModelPage } from "./pages/Models";
import { DatasetsPage, DatasetPage } from "./pages/Datasets";
import { JobsPage, JobPage, ComparePage } from "./pages/Training";
import { FineTunePage, FineTuningPage } from "./pages/FineTuning";
import { PlaygroundPage } from "./pages/Playground";
import { KeysPage } from "./pages/Keys";
import { TenantsPage } from "./pages/Tenants";
import { UsagePage } from "./pages/Usage";
import { AuditPage } from "./pages/Audit";
import { StatusPage } from "./pages/Status";

interface NavItem {
  id: string;
  label: string;
  needs: Permission;
}

const NAV: NavItem[] = [
  { id: "models", label: "Models", needs: "read_models" },
  { id: "datasets", label: "Datasets", needs: "read_data" },
  { id: "training", label: "Training", needs: "train" },
  { id: "playground", label: "Playground", needs: "infer" },
  { id: "keys", label: "Keys", needs: "manage_keys" },
  { id: "tenants", label: "Tenants", needs: "manage_tenants" },
  { id: "usage", label: "Usage", needs: "read_models" },
  { id: "audit", label: "Audit", needs: "read_audit" },
  { id: "status", label: "Status", needs: "read_models" },
];

export function App() {
  const [me, setMe] = useState<Me | null>(null);
  const [checking, setChecking] = useState(() => session.key() !== null);
  const [signOutReason, setSignOutReason] = useState<string | undefined>(undefined);

  const signOut = (reason?: string) => {
    session.signOut();
    setMe(null);
    setSignOutReason(reason);
    navigate("/");
  };

  useEffect(() => {
    setUnauthorizedHandler((message) => signOut(`Signed out: ${message}`));
    if (!session.key()) return;
    api<Me>("GET", "/api/v1/me")
      .then(setMe)
      .catch((e) => {
        session.signOut();
        setSignOutReason(messageOf(e));
      })
      .finally(() => setChecking(false));
  }, []);

  if (checking) return <Loading what="Checking your key" />;
  if (!me) {
    return (
      <SignIn
        notice={signOutReason}
        onSignedIn={(m) => {
          setSignOutReason(undefined);
          setMe(m);
        }}
      />
    );
  }
  return (
    <MeContext.Provider value={me}>
      <Shell me={me} onSignOut={() => signOut()} />
    </MeContext.Provider>
  );
}

function Shell({ me, onSignOut }: { me: Me; onSignOut: () => void }) {
  const route = useRoute();
  const items = NAV.filter((n) => can(me, n.needs));
  const section = route.parts[0] ?? items[0]?.id ?? "models";
  const [menuOpen, setMenuOpen] = useState(false);
  useEffect(() => setMenuOpen(false), [route]);
  return (
    <div class="shell">
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById("main")?.focus(); }}>
        Skip to content
      </a>
      <header class="topbar">
        <a class="brand" href={href(items[0]?.id ?? "models")}>
          aiaas
        </a>
        <button type="button" class="menu-toggle secondary small" aria-expanded={menuOpen} aria-controls="nav" onClick={() => setMenuOpen(!menuOpen)}>
          Menu
        </button>
        <nav id="nav" class={menuOpen ? "open" : ""} aria-label="Sections">
          {items.map((n) => (
            <a href={href(n.id)} aria-current={section === n.id ? "page" : undefined}>
              {n.label}
            </a>
          ))}
        </nav>
        <div class="who">
          <span title={`key ${me.key.id}`}>
            {me.key.name} · <span class="badge info">{me.key.role}</span> · {me.tenant.name}
          </span>
          <button type="button" class="secondary small" onClick={onSignOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Page section={section} parts={route.parts} query={route.query} items={items} />
      </main>
    </div>
  );
}

function Page({ section, parts, query, items }: { section: string; parts: string[]; query: URLSearchParams; items: NavItem[] }) {
  const allowed = items.some((i) => i.id === section);
  if (!allowed) {
    return <ErrorBox error={new Error(`There is no page "${section}" for your key. Pick a section above.`)} />;
  }
  const id = parts[1];
  switch (section) {
    case "models":
      return id ? <ModelPage name={id} library={query.get("library") === "1"} version={query.get("version")} /> : <ModelsPage />;
    case "datasets":
      return id ? <DatasetPage id={id} /> : <DatasetsPage />;
    case "training":
      if (id === "compare") return <ComparePage ids={(query.get("ids") ?? "").split(",").filter(Boolean)} />;
      if (id === "fine-tuning") return <FineTuningPage />;
      if (id?.startsWith("ftjob-")) return <FineTunePage id={id} />;
      return id ? <JobPage id={id} /> : <JobsPage />;
    case "playground":
      return <PlaygroundPage tab={id} />;
    case "keys":
      return <KeysPage />;
    case "tenants":
      return <TenantsPage />;
    case "usage":
      return <UsagePage />;
    case "audit":
      return <AuditPage />;
    case "status":
      return <StatusPage />;
    default:
      return null;
  }
}
