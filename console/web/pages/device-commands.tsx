import { useEffect, useState } from 'preact/hooks';
import { useLoad } from '../components/hooks.js';
import { Badge, ErrorNote, Field, Loading, Section, useAction } from '../components/ui.js';
import { isTerminal, parseJson } from '../logic/commands.js';
import { formatTime } from '../logic/format.js';
import { useSession } from '../session.js';
import type { CommandView, Page } from './types.js';

/** 128 random bits in hex (getRandomValues works on plain http too, where randomUUID does not). */
const randomToken = () =>
  Array.from(crypto.getRandomValues(new Uint8Array(16)), (byte) => byte.toString(16).padStart(2, '0')).join('');

/** A command's lifecycle as it happens: read again every second until it ends. */
function CommandWatch(props: { id: string; onDone(): void }) {
  const { api } = useSession();
  const [command, setCommand] = useState<CommandView | undefined>();
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      try {
        const view = await api.get<CommandView>('command-dispatch', `/commands/${encodeURIComponent(props.id)}`);
        if (stopped) return;
        setCommand(view);
        if (isTerminal(view.status)) return props.onDone();
      } catch (failure) {
        if (!stopped) setError(failure);
      }
      if (!stopped) timer = setTimeout(() => void poll(), 1_000);
    };
    void poll();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  }, [api, props.id]);
  return (
    <div class="watch" aria-live="polite" data-testid="command-watch">
      <ErrorNote error={error} />
      {command ? (
        <>
          <p>
            Command <code>{command.name}</code> ({command.id}):{' '}
            <span data-testid="command-status">
              <Badge status={command.status} />
            </span>
          </p>
          <ol class="lifecycle" aria-label="Lifecycle">
            {command.history.map((step) => (
              <li key={`${step.status}-${step.at}`}>
                <Badge status={step.status} /> {formatTime(step.at)}
              </li>
            ))}
          </ol>
          {command.result !== undefined ? <pre class="json">{JSON.stringify(command.result)}</pre> : null}
          {command.error !== undefined ? <pre class="json">{JSON.stringify(command.error)}</pre> : null}
        </>
      ) : (
        <Loading what="the command" />
      )}
    </div>
  );
}

export function CommandsPanel(props: { deviceId: string }) {
  const { api, can } = useSession();
  const [form, setForm] = useState({ name: '', params: '', timeout: '30' });
  const [watching, setWatching] = useState<string | undefined>();
  const history = useLoad(
    (signal) =>
      api.get<Page<CommandView>>(
        'command-dispatch',
        `/devices/${encodeURIComponent(props.deviceId)}/commands?limit=20`,
        signal,
      ),
    [api, props.deviceId],
  );
  const send = useAction(async () => {
    const params = parseJson(form.params, 'Params');
    if (!params.ok) throw new Error(params.error);
    const answer = await api.request<CommandView>(
      'command-dispatch',
      `/devices/${encodeURIComponent(props.deviceId)}/commands`,
      {
        method: 'POST',
        body: {
          name: form.name,
          ...(params.value === undefined ? {} : { params: params.value }),
          timeoutSeconds: Number(form.timeout) || 30,
        },
        // A retried click is the same command (command-dispatch's Idempotency-Key).
        headers: { 'idempotency-key': `"console-${randomToken()}"` },
      },
    );
    setWatching(answer.data.id);
    history.reload();
  });
  return (
    <Section title="Commands">
      {can.commandsWrite ? (
        <form
          class="inline-form"
          aria-label="Send a command"
          onSubmit={(event) => {
            event.preventDefault();
            void send.run();
          }}
        >
          <Field label="Command name">
            <input
              name="command"
              required
              value={form.name}
              onInput={(e) => setForm({ ...form, name: e.currentTarget.value })}
            />
          </Field>
          <Field label="Params (JSON)">
            <input
              name="params"
              value={form.params}
              onInput={(e) => setForm({ ...form, params: e.currentTarget.value })}
            />
          </Field>
          <Field label="Timeout (s)">
            <input
              name="timeout"
              type="number"
              min={1}
              max={3600}
              value={form.timeout}
              onInput={(e) => setForm({ ...form, timeout: e.currentTarget.value })}
            />
          </Field>
          <button type="submit" class="primary" disabled={send.busy}>
            Send
          </button>
        </form>
      ) : null}
      <ErrorNote error={send.error} />
      {watching ? <CommandWatch id={watching} onDone={history.reload} /> : null}
      <ErrorNote error={history.error} />
      {history.data ? (
        <div class="table-wrap">
          <table>
            <caption>Recent commands</caption>
            <thead>
              <tr>
                <th scope="col">Sent</th>
                <th scope="col">Name</th>
                <th scope="col">Status</th>
                <th scope="col">Attempts</th>
              </tr>
            </thead>
            <tbody>
              {history.data.items.map((command) => (
                <tr key={command.id}>
                  <td>{formatTime(command.createdAt)}</td>
                  <td>
                    <code>{command.name}</code>
                  </td>
                  <td>
                    <Badge status={command.status} />
                  </td>
                  <td>{command.attempts}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </Section>
  );
}
