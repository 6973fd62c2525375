import { useMemo, useState } from 'preact/hooks';
import { Link, useLocation, useSearch } from 'wouter-preact';
import { useLoad, useNow } from '../components/hooks.js';
import { PageTitle } from '../components/layout.js';
import { Badge, Dialog, ErrorNote, Field, JsonBlock, Loading, Pager, useAction } from '../components/ui.js';
import { CursorTrail } from '../logic/devices-query.js';
import { formatAgo, formatTime } from '../logic/format.js';
import { useSession } from '../session.js';
import type { DeadLetterView, Page } from './types.js';

/** What a Trigger could not deliver and what was refused: filter, inspect, replay one or all. */
export function DeadLettersPage() {
  const { api, can } = useSession();
  const search = useSearch();
  const [, navigate] = useLocation();
  const params = new URLSearchParams(search);
  const filters = {
    status: params.get('status') ?? '',
    type: params.get('type') ?? '',
    subject: params.get('subject') ?? '',
  };
  const [draft, setDraft] = useState(filters);
  const trail = useMemo(() => new CursorTrail(), [search]);
  const [round, setRound] = useState(0);
  const [inspecting, setInspecting] = useState<DeadLetterView | undefined>();
  const [outcome, setOutcome] = useState<string | undefined>();
  const now = useNow(5_000);

  const query = () => {
    const q = new URLSearchParams({ limit: '50' });
    for (const [key, value] of Object.entries(filters)) if (value) q.set(key, value);
    if (trail.current) q.set('cursor', trail.current);
    return q.toString();
  };
  const page = useLoad(
    (signal) => api.get<Page<DeadLetterView>>('dead-letters', `/dead-letters?${query()}`, signal),
    [api, search, round],
  );
  const replay = useAction(async (letter: DeadLetterView) => {
    const answer = await api.request<{ status: string; to?: string }>(
      'dead-letters',
      `/dead-letters/${encodeURIComponent(letter.id)}/replay`,
      {
        method: 'POST',
      },
    );
    setOutcome(`Replayed ${letter.event.id}: ${answer.data.status ?? 'sent'}`);
    setInspecting(undefined);
    page.reload();
  });
  const replayAll = useAction(async () => {
    if (!window.confirm('Replay every pending dead letter that matches these filters?')) return;
    const body = {
      ...(filters.type ? { type: filters.type } : {}),
      ...(filters.subject ? { subject: filters.subject } : {}),
    };
    const answer = await api.request<Record<string, unknown>>('dead-letters', '/dead-letters/replay', {
      method: 'POST',
      body,
    });
    setOutcome(`Replay: ${JSON.stringify(answer.data)}`);
    page.reload();
  });
  return (
    <>
      <PageTitle
        sub={
          can.deadLettersWrite ? (
            <button type="button" onClick={() => void replayAll.run()} disabled={replayAll.busy}>
              Replay all pending
            </button>
          ) : undefined
        }
      >
        Dead letters
      </PageTitle>
      <form
        class="filters"
        aria-label="Filter dead letters"
        onSubmit={(event) => {
          event.preventDefault();
          const q = new URLSearchParams();
          for (const [key, value] of Object.entries(draft)) if (value) q.set(key, value);
          navigate(`/dead-letters${q.size ? `?${q}` : ''}`);
        }}
      >
        <Field label="Status">
          <select
            name="status"
            value={draft.status}
            onChange={(e) => setDraft({ ...draft, status: e.currentTarget.value })}
          >
            <option value="">any</option>
            <option value="pending">pending</option>
            <option value="replayed">replayed</option>
          </select>
        </Field>
        <Field label="Event type">
          <input name="type" value={draft.type} onInput={(e) => setDraft({ ...draft, type: e.currentTarget.value })} />
        </Field>
        <Field label="Device (subject)">
          <input
            name="subject"
            value={draft.subject}
            onInput={(e) => setDraft({ ...draft, subject: e.currentTarget.value })}
          />
        </Field>
        <button type="submit" class="primary">
          Filter
        </button>
      </form>
      {outcome ? (
        <p role="status" class="ok">
          {outcome}
        </p>
      ) : null}
      <ErrorNote error={page.error ?? replayAll.error} />
      {!page.data ? <Loading what="dead letters" /> : null}
      {page.data?.items.length === 0 ? <p class="muted">Nothing here.</p> : null}
      {page.data && page.data.items.length > 0 ? (
        <div class="table-wrap">
          <table data-testid="dead-letters-table">
            <caption class="visually-hidden">Dead letters, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Last</th>
                <th scope="col">Type</th>
                <th scope="col">Device</th>
                <th scope="col">Failure</th>
                <th scope="col">Status</th>
                <th scope="col">Inspect</th>
              </tr>
            </thead>
            <tbody>
              {page.data.items.map((letter) => (
                <tr key={letter.id}>
                  <td>{formatAgo(letter.lastDeadLetteredAt, now)}</td>
                  <td>
                    <code>{letter.event.type}</code>
                  </td>
                  <td>
                    {letter.event.subject ? (
                      <Link href={`/devices/${encodeURIComponent(letter.event.subject)}`}>{letter.event.subject}</Link>
                    ) : (
                      '–'
                    )}
                  </td>
                  <td class="wrap">
                    {letter.error.code ?? ''} {letter.error.text?.slice(0, 120) ?? ''}
                  </td>
                  <td>
                    <Badge status={letter.status} />
                  </td>
                  <td>
                    <button
                      type="button"
                      onClick={() => setInspecting(letter)}
                      aria-label={`Inspect ${letter.event.id}`}
                    >
                      Inspect
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <Pager
        page={trail.page}
        canBack={trail.canGoBack}
        canForward={Boolean(page.data?.next)}
        onBack={() => {
          trail.back();
          setRound((n) => n + 1);
        }}
        onForward={() => {
          if (page.data?.next) trail.forward(page.data.next);
          setRound((n) => n + 1);
        }}
      />
      <Dialog title="Dead letter" open={inspecting !== undefined} onClose={() => setInspecting(undefined)}>
        {inspecting ? (
          <>
            <p>
              <Badge status={inspecting.status} /> dead-lettered {inspecting.deadLetterCount}× (first{' '}
              {formatTime(inspecting.firstDeadLetteredAt)}, last {formatTime(inspecting.lastDeadLetteredAt)}), replayed{' '}
              {inspecting.replayCount}×
            </p>
            <h3>Failure</h3>
            <JsonBlock value={inspecting.error} label="Failure" />
            <h3>Event</h3>
            <JsonBlock value={inspecting.event} label="Event" />
            <ErrorNote error={replay.error} />
            {can.deadLettersWrite ? (
              <button type="button" class="primary" onClick={() => void replay.run(inspecting)} disabled={replay.busy}>
                Replay to the subscriber that failed
              </button>
            ) : null}
          </>
        ) : null}
      </Dialog>
    </>
  );
}
