import { useState } from 'preact/hooks';
import { useLocation } from 'wouter-preact';
import { ApiError } from '../api.js';
import { Dialog, ErrorNote, Field, SecretOnce, Section, useAction } from '../components/ui.js';
import { etagOf, parseObject } from '../logic/commands.js';
import { parseTags } from '../logic/devices-query.js';
import { formatJson, formatTime } from '../logic/format.js';
import { useSession } from '../session.js';
import type { DeviceView } from './types.js';

/** The registry's side of a device: what it is, and (with devices:write) edit, disable, rotate, delete. */
export function RegistryPanel(props: { device: DeviceView; reload(): void }) {
  const { api, can } = useSession();
  const [, navigate] = useLocation();
  const device = props.device;
  const path = `/devices/${encodeURIComponent(device.id)}`;
  const [editing, setEditing] = useState(false);
  const [form, setForm] = useState({ name: '', tags: '', metadata: '' });
  const [secret, setSecret] = useState<string | undefined>();
  const [deleting, setDeleting] = useState(false);
  const [confirmId, setConfirmId] = useState('');

  const patch = async (body: Record<string, unknown>) => {
    try {
      await api.request('device-registry', path, {
        method: 'PATCH',
        body,
        headers: { 'if-match': etagOf(device.version) },
      });
    } catch (error) {
      if (error instanceof ApiError && error.status === 412)
        throw new Error('The device was changed meanwhile; it is shown again as it is now. Apply your change again.');
      throw error;
    } finally {
      props.reload();
    }
  };
  const save = useAction(async () => {
    const metadata = parseObject(form.metadata, 'Metadata');
    if (!metadata.ok) throw new Error(metadata.error);
    await patch({ ...(form.name ? { name: form.name } : {}), tags: parseTags(form.tags), metadata: metadata.value });
    setEditing(false);
  });
  const toggle = useAction(async () => patch({ status: device.status === 'active' ? 'disabled' : 'active' }));
  const rotate = useAction(async () => {
    const answer = await api.request<{ secret: string }>('device-registry', `${path}/credentials`, { method: 'POST' });
    setSecret(answer.data.secret);
    props.reload();
  });
  const remove = useAction(async () => {
    await api.request('device-registry', path, { method: 'DELETE' });
    navigate('/devices');
  });

  return (
    <Section
      title="Registry"
      actions={
        can.devicesWrite ? (
          <>
            <button
              type="button"
              onClick={() => {
                setForm({
                  name: device.name ?? '',
                  tags: device.tags.join(', '),
                  metadata: formatJson(device.metadata),
                });
                setEditing(true);
              }}
            >
              Edit
            </button>
            <button type="button" onClick={() => void toggle.run()} disabled={toggle.busy}>
              {device.status === 'active' ? 'Disable' : 'Enable'}
            </button>
            <button type="button" onClick={() => void rotate.run()} disabled={rotate.busy}>
              Rotate credentials
            </button>
            <button type="button" class="danger" onClick={() => setDeleting(true)}>
              Delete
            </button>
          </>
        ) : undefined
      }
    >
      <dl class="facts">
        <dt>Name</dt>
        <dd>{device.name ?? '–'}</dd>
        <dt>Type</dt>
        <dd>{device.type ?? '–'}</dd>
        <dt>Tags</dt>
        <dd>{device.tags.join(', ') || '–'}</dd>
        <dt>Registered</dt>
        <dd>{formatTime(device.createdAt)}</dd>
        <dt>Credentials rotated</dt>
        <dd>{formatTime(device.credentialRotatedAt)}</dd>
        <dt>Metadata</dt>
        <dd>
          <code class="wrap">{JSON.stringify(device.metadata)}</code>
        </dd>
      </dl>
      <ErrorNote error={toggle.error ?? rotate.error} />
      {secret ? <SecretOnce label="New device secret" secret={secret} /> : null}
      <Dialog title="Edit device" open={editing} onClose={() => setEditing(false)}>
        <form
          onSubmit={(event) => {
            event.preventDefault();
            void save.run();
          }}
        >
          <Field label="Name">
            <input name="name" value={form.name} onInput={(e) => setForm({ ...form, name: e.currentTarget.value })} />
          </Field>
          <Field label="Tags" hint="comma or space separated">
            <input name="tags" value={form.tags} onInput={(e) => setForm({ ...form, tags: e.currentTarget.value })} />
          </Field>
          <Field label="Metadata (JSON object, replaced whole)">
            <textarea
              name="metadata"
              rows={6}
              value={form.metadata}
              onInput={(e) => setForm({ ...form, metadata: e.currentTarget.value })}
            />
          </Field>
          <ErrorNote error={save.error} />
          <button type="submit" class="primary" disabled={save.busy}>
            Save
          </button>
        </form>
      </Dialog>
      <Dialog title="Delete device" open={deleting} onClose={() => setDeleting(false)}>
        <form
          onSubmit={(event) => {
            event.preventDefault();
            void remove.run();
          }}
        >
          <p>
            Deleting <strong>{device.id}</strong> ends its broker access at once and disconnects it. Its stored
            telemetry stays until the retention removes it.
          </p>
          <Field label={`Type ${device.id} to confirm`}>
            <input
              name="confirm"
              value={confirmId}
              onInput={(e) => setConfirmId(e.currentTarget.value)}
              autoComplete="off"
            />
          </Field>
          <ErrorNote error={remove.error} />
          <button type="submit" class="danger" disabled={remove.busy || confirmId !== device.id}>
            Delete for good
          </button>
        </form>
      </Dialog>
    </Section>
  );
}
