import { useState } from 'preact/hooks';
import { useAction } from '../components/ui.js';

/** Sign in with an API key: the console holds no credential of its own and asks the api-keys API who it is. */
export function SignIn(props: { submit(key: string): Promise<void>; message?: string | undefined }) {
  const [key, setKey] = useState('');
  const action = useAction(async () => props.submit(key));
  return (
    <main id="main" class="sign-in">
      <h1>kiot console</h1>
      <p>Sign in with an API key. A key with read scopes only shows a read-only console.</p>
      {props.message ? (
        <p class="error" role="alert">
          {props.message}
        </p>
      ) : null}
      <form
        onSubmit={(event) => {
          event.preventDefault();
          void action.run();
        }}
      >
        <label class="field">
          <span class="field-label">API key</span>
          <input
            name="key"
            type="password"
            autoComplete="off"
            spellcheck={false}
            required
            value={key}
            onInput={(event) => setKey(event.currentTarget.value)}
          />
          <span class="hint">kiot_&lt;id&gt;_&lt;secret&gt; — `npm start` prints one. It stays in this tab only.</span>
        </label>
        {action.error ? (
          <p class="error" role="alert">
            {action.error instanceof Error ? action.error.message : String(action.error)}
          </p>
        ) : null}
        <button type="submit" class="primary" disabled={action.busy}>
          {action.busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
