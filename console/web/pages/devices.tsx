import { useMemo, useState } from 'preact/hooks';
import { Link, useLocation, useSearch } from 'wouter-preact';
import { useLoad, useNow } from '../components/hooks.js';
import { PageTitle } from '../components/layout.js';
import { Badge, Dialog, ErrorNote, Field, Loading, Pager, SecretOnce, useAction } from '../components/ui.js';
import { parseObject } from '../logic/commands.js';
import {
  CursorTrail,
  type DeviceFilters,
  filtersFrom,
  parseTags,
  passesClientFilters,
  registryQuery,
  searchOf,
} from '../logic/devices-query.js';
import { formatAgo } from '../logic/format.js';
import { useSession } from '../session.js';
import type { DeviceView, Page, PresenceView } from './types.js';

const PAGE_SIZE = 50;

/** Devices: search by id prefix, filter by tag, type and status, page with cursors, register new ones. */
export function DevicesPage() {
  const { api, can } = useSession();
  const search = useSearch();
  const [, navigate] = useLocation();
  const filters = useMemo(() => filtersFrom(search), [search]);
  const [draft, setDraft] = useState<DeviceFilters>(filters);
  const trail = useMemo(() => new CursorTrail(), [search]);
  const [cursorRound, setCursorRound] = useState(0);
  const [registering, setRegistering] = useState(false);
  const now = useNow(5_000);

  const types = useLoad(
    async (signal) =>
      can.devicesRead
        ? api.get<{ byType: { type: string | null; devices: number }[] }>('device-registry', '/device-summary', signal)
        : undefined,
    [api],
  );

  const page = useLoad(
    async (signal) => {
      let devices: DeviceView[];
      let next: string | undefined;
      if (filters.status === 'online') {
        // From the presence index, newest connection first; the cursor is its offset.
        const offset = Number(trail.current ?? 0);
        const online = await api.get<{ items: PresenceView[]; nextOffset: number | null }>(
          'telemetry-ingest',
          `/presence?status=online&offset=${offset}&limit=${PAGE_SIZE}`,
          signal,
        );
        const ids = online.items.map((item) => item.deviceId);
        const found = ids.length
          ? (
              await api.get<Page<DeviceView>>(
                'device-registry',
                `/devices?ids=${ids.map(encodeURIComponent).join(',')}&limit=${PAGE_SIZE}`,
                signal,
              )
            ).items
          : [];
        const byId = new Map(found.map((device) => [device.id, device]));
        devices = ids.map((id) => byId.get(id)).filter((device): device is DeviceView => device !== undefined);
        next = online.nextOffset === null ? undefined : String(online.nextOffset);
      } else {
        const answer = await api.get<Page<DeviceView>>(
          'device-registry',
          `/devices?${registryQuery(filters, PAGE_SIZE, trail.current)}`,
          signal,
        );
        devices = answer.items;
        next = answer.nextCursor ?? undefined;
      }
      const presence = new Map<string, PresenceView>();
      if (can.telemetryRead && devices.length > 0) {
        const answer = await api.get<{ items: PresenceView[] }>(
          'telemetry-ingest',
          `/presence?ids=${devices.map((device) => encodeURIComponent(device.id)).join(',')}`,
          signal,
        );
        for (const item of answer.items) presence.set(item.deviceId, item);
      }
      const shown = devices.filter((device) => passesClientFilters(device, presence.get(device.id)?.status, filters));
      return { devices: shown, presence, next, scanned: devices.length };
    },
    [api, search, cursorRound],
  );

  const apply = (event: Event) => {
    event.preventDefault();
    navigate(`/devices${searchOf(draft)}`);
  };
  const data = page.data;
  return (
    <>
      <PageTitle
        sub={
          can.devicesWrite ? (
            <button type="button" class="primary" onClick={() => setRegistering(true)}>
              Register a device
            </button>
          ) : undefined
        }
      >
        Devices
      </PageTitle>
      <form class="filters" aria-label="Find devices" onSubmit={apply}>
        <Field label="Id starts with">
          <input
            type="search"
            name="q"
            value={draft.q}
            onInput={(e) => setDraft({ ...draft, q: e.currentTarget.value })}
          />
        </Field>
        <Field label="Tag">
          <input name="tag" value={draft.tag} onInput={(e) => setDraft({ ...draft, tag: e.currentTarget.value })} />
        </Field>
        <Field label="Type">
          <select name="type" value={draft.type} onChange={(e) => setDraft({ ...draft, type: e.currentTarget.value })}>
            <option value="">any</option>
            {(types.data?.byType ?? [])
              .filter((entry) => entry.type !== null)
              .map((entry) => (
                <option key={entry.type} value={entry.type!}>
                  {entry.type} ({entry.devices})
                </option>
              ))}
          </select>
        </Field>
        <Field label="Status">
          <select
            name="status"
            value={draft.status}
            onChange={(e) => setDraft({ ...draft, status: e.currentTarget.value as DeviceFilters['status'] })}
          >
            <option value="">any</option>
            <option value="online">online</option>
            <option value="offline">offline</option>
            <option value="active">active</option>
            <option value="disabled">disabled</option>
          </select>
        </Field>
        <button type="submit" class="primary">
          Search
        </button>
      </form>
      <ErrorNote error={page.error} />
      {!data && page.loading ? <Loading what="devices" /> : null}
      {data ? (
        <div class="table-wrap">
          <table data-testid="devices-table">
            <caption>
              {data.devices.length} device{data.devices.length === 1 ? '' : 's'} on this page
              {data.scanned > data.devices.length ? ` (of ${data.scanned} read; the rest did not match)` : ''}
            </caption>
            <thead>
              <tr>
                <th scope="col">Id</th>
                <th scope="col">Name</th>
                <th scope="col">Type</th>
                <th scope="col">Tags</th>
                <th scope="col">Status</th>
                <th scope="col">Presence</th>
                <th scope="col">Last seen</th>
              </tr>
            </thead>
            <tbody>
              {data.devices.map((device) => {
                const presence = data.presence.get(device.id);
                return (
                  <tr key={device.id}>
                    <td>
                      <Link href={`/devices/${encodeURIComponent(device.id)}`}>{device.id}</Link>
                    </td>
                    <td>{device.name ?? ''}</td>
                    <td>{device.type ?? ''}</td>
                    <td>{device.tags.join(', ')}</td>
                    <td>
                      <Badge status={device.status} />
                    </td>
                    <td>{presence ? <Badge status={presence.status} /> : '–'}</td>
                    <td>{presence ? formatAgo(presence.lastSeen, now) : '–'}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      ) : null}
      <Pager
        page={trail.page}
        canBack={trail.canGoBack}
        canForward={Boolean(data?.next)}
        onBack={() => {
          trail.back();
          setCursorRound((n) => n + 1);
        }}
        onForward={() => {
          if (data?.next) trail.forward(data.next);
          setCursorRound((n) => n + 1);
        }}
      />
      <RegisterDialog open={registering} onClose={() => setRegistering(false)} onDone={page.reload} />
    </>
  );
}

function RegisterDialog(props: { open: boolean; onClose(): void; onDone(): void }) {
  const { api } = useSession();
  const [form, setForm] = useState({ id: '', name: '', type: '', tags: '', metadata: '' });
  const [created, setCreated] = useState<{ id: string; secret: string } | undefined>();
  const action = useAction(async () => {
    const metadata = parseObject(form.metadata, 'Metadata');
    if (!metadata.ok) throw new Error(metadata.error);
    const body = {
      ...(form.id ? { id: form.id } : {}),
      ...(form.name ? { name: form.name } : {}),
      ...(form.type ? { type: form.type } : {}),
      tags: parseTags(form.tags),
      metadata: metadata.value,
    };
    const answer = await api.request<{ device: DeviceView; secret: string }>('device-registry', '/devices', {
      method: 'POST',
      body,
    });
    setCreated({ id: answer.data.device.id, secret: answer.data.secret });
    props.onDone();
  });
  const close = () => {
    setCreated(undefined);
    setForm({ id: '', name: '', type: '', tags: '', metadata: '' });
    props.onClose();
  };
  return (
    <Dialog title="Register a device" open={props.open} onClose={close}>
      {created ? (
        <>
          <p>
            Registered <Link href={`/devices/${encodeURIComponent(created.id)}`}>{created.id}</Link>.
          </p>
          <SecretOnce label="Device secret" secret={created.secret} />
          <button type="button" onClick={close}>
            Done
          </button>
        </>
      ) : (
        <form
          onSubmit={(event) => {
            event.preventDefault();
            void action.run();
          }}
        >
          <Field label="Id" hint="empty: one is generated">
            <input name="id" value={form.id} onInput={(e) => setForm({ ...form, id: e.currentTarget.value })} />
          </Field>
          <Field label="Name">
            <input name="name" value={form.name} onInput={(e) => setForm({ ...form, name: e.currentTarget.value })} />
          </Field>
          <Field label="Type">
            <input name="type" value={form.type} onInput={(e) => setForm({ ...form, type: e.currentTarget.value })} />
          </Field>
          <Field label="Tags" hint="comma or space separated">
            <input name="tags" value={form.tags} onInput={(e) => setForm({ ...form, tags: e.currentTarget.value })} />
          </Field>
          <Field label="Metadata (JSON object)">
            <textarea
              name="metadata"
              rows={3}
              value={form.metadata}
              onInput={(e) => setForm({ ...form, metadata: e.currentTarget.value })}
            />
          </Field>
          <ErrorNote error={action.error} />
          <button type="submit" class="primary" disabled={action.busy}>
            Register
          </button>
        </form>
      )}
    </Dialog>
  );
}
