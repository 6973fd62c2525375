import { type ComponentChildren, createContext } from 'preact';
import { useCallback, useContext, useEffect, useMemo, useState } from 'preact/hooks';
import { type Api, ApiError, createApi } from './api.js';
import { isReadOnly, type Permission, permissionsOf } from './logic/scopes.js';

/** Who is signed in: the key (this tab only), what the api-keys API says it is, and what it may do. */
export interface Session {
  api: Api;
  self: { id: string; name: string | null; scopes: string[]; source: string };
  can: Record<Permission, boolean>;
  readOnly: boolean;
  signOut(): void;
}

const KEY_STORAGE = 'kiot.console.key';
const SessionContext = createContext<Session | undefined>(undefined);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error('useSession outside a signed-in console');
  return session;
}

/** Asks the api-keys API who the key is (`GET /api-keys/self`: any valid key may ask). */
export async function whoIs(key: string): Promise<Session['self']> {
  const api = createApi(key, () => undefined);
  return api.get<Session['self']>('api-keys', '/api-keys/self');
}

type State =
  | { kind: 'checking' }
  | { kind: 'signed-out'; message?: string }
  | { kind: 'signed-in'; key: string; self: Session['self'] };

/**
 * Keeps the key in sessionStorage: it lives as long as the tab and is sent only to this origin's `/api/`. A
 * 401 from any API (the key was revoked or expired) signs the tab out with a reason.
 */
export function SessionProvider(props: {
  children: ComponentChildren;
  signIn: (submit: (key: string) => Promise<void>, message?: string) => ComponentChildren;
  checking: ComponentChildren;
}) {
  const [state, setState] = useState<State>(() => {
    const key = sessionStorage.getItem(KEY_STORAGE);
    return key ? { kind: 'checking' } : { kind: 'signed-out' };
  });

  const signOut = useCallback((message?: string) => {
    sessionStorage.removeItem(KEY_STORAGE);
    setState({ kind: 'signed-out', ...(message ? { message } : {}) });
  }, []);

  const submit = useCallback(async (key: string) => {
    const trimmed = key.trim();
    try {
      const self = await whoIs(trimmed);
      sessionStorage.setItem(KEY_STORAGE, trimmed);
      setState({ kind: 'signed-in', key: trimmed, self });
    } catch (error) {
      if (error instanceof ApiError && error.status === 401)
        throw new Error('This key is not valid (or expired, or revoked).');
      throw error;
    }
  }, []);

  useEffect(() => {
    if (state.kind !== 'checking') return;
    const key = sessionStorage.getItem(KEY_STORAGE);
    if (!key) return setState({ kind: 'signed-out' });
    whoIs(key).then(
      (self) => setState({ kind: 'signed-in', key, self }),
      (error: unknown) =>
        signOut(error instanceof ApiError && error.status === 401 ? 'Your key is no longer valid.' : undefined),
    );
  }, [state.kind, signOut]);

  const session = useMemo<Session | undefined>(() => {
    if (state.kind !== 'signed-in') return undefined;
    return {
      api: createApi(state.key, () => signOut('Your key is no longer valid: sign in again.')),
      self: state.self,
      can: permissionsOf(state.self.scopes),
      readOnly: isReadOnly(state.self.scopes),
      signOut: () => signOut(),
    };
  }, [state, signOut]);

  if (state.kind === 'checking') return <>{props.checking}</>;
  if (state.kind === 'signed-out') return <>{props.signIn(submit, state.message)}</>;
  return <SessionContext.Provider value={session}>{props.children}</SessionContext.Provider>;
}
