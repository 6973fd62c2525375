import { useState } from 'preact/hooks';
import { Link } from 'wouter-preact';
import { useLoad, useNow } from '../components/hooks.js';
import { PageTitle } from '../components/layout.js';
import { Badge, ErrorNote, Field, Loading, Pager } from '../components/ui.js';
import { IN_FLIGHT } from '../logic/commands.js';
import { CursorTrail } from '../logic/devices-query.js';
import { formatAgo } from '../logic/format.js';
import { useSession } from '../session.js';
import type { CommandView, Page } from './types.js';

const CHOICES = [
  { value: IN_FLIGHT.join(','), label: 'in flight (queued, sent, delivered)' },
  { value: 'SUCCEEDED', label: 'succeeded' },
  { value: 'FAILED,REJECTED,TIMED_OUT,EXPIRED', label: 'failed, rejected, timed out, expired' },
  { value: '', label: 'all' },
];

/** The fleet's commands, by status: what is in flight now, what ended how. Refreshed every 2 s. */
export function CommandsPage() {
  const { api } = useSession();
  const [status, setStatus] = useState(CHOICES[0]!.value);
  const [trail] = useState(() => new CursorTrail());
  const [round, setRound] = useState(0);
  const now = useNow(2_000);
  const page = useLoad(
    (signal) => {
      const query = new URLSearchParams({
        limit: '50',
        ...(status ? { status } : {}),
        ...(trail.current ? { cursor: trail.current } : {}),
      });
      return api.get<Page<CommandView>>('command-dispatch', `/commands?${query}`, signal);
    },
    [api, status, round],
    trail.page === 1 ? 2_000 : undefined,
  );
  return (
    <>
      <PageTitle>Commands</PageTitle>
      <form class="filters" onSubmit={(event) => event.preventDefault()}>
        <Field label="Status">
          <select
            name="status"
            value={status}
            onChange={(event) => {
              trail.reset();
              setStatus(event.currentTarget.value);
            }}
          >
            {CHOICES.map((choice) => (
              <option key={choice.value} value={choice.value}>
                {choice.label}
              </option>
            ))}
          </select>
        </Field>
      </form>
      <ErrorNote error={page.error} />
      {!page.data ? <Loading what="commands" /> : null}
      {page.data ? (
        <div class="table-wrap">
          <table data-testid="commands-table">
            <caption>{page.data.items.length} commands on this page, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Created</th>
                <th scope="col">Device</th>
                <th scope="col">Name</th>
                <th scope="col">Status</th>
                <th scope="col">Attempts</th>
              </tr>
            </thead>
            <tbody>
              {page.data.items.map((command) => (
                <tr key={command.id}>
                  <td>{formatAgo(command.createdAt, now)}</td>
                  <td>
                    <Link href={`/devices/${encodeURIComponent(command.deviceId)}`}>{command.deviceId}</Link>
                  </td>
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
      <Pager
        page={trail.page}
        canBack={trail.canGoBack}
        canForward={Boolean(page.data?.nextCursor)}
        onBack={() => {
          trail.back();
          setRound((n) => n + 1);
        }}
        onForward={() => {
          if (page.data?.nextCursor) trail.forward(page.data.nextCursor);
          setRound((n) => n + 1);
        }}
      />
    </>
  );
}
