// Who is signed in, for every page: what a user sees and can press follows their key's
// permissions (the server enforces them regardless).

import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { Me, Permission } from "./types";

export const MeContext = createContext<Me | null>(null);

export function useMe(): Me {
  const me = useContext(MeContext);
  if (!me) throw new Error("useMe outside a signed-in page");
  return me;
}

export function can(me: Me, permission: Permission): boolean {
  return me.permissions.includes(permission);
}

export function useCan(permission: Permission): boolean {
  return can(useMe(), permission);
}
