import { useState } from 'preact/hooks';
import { ApiError } from '../api.js';
import { Badge, ErrorNote, Field, JsonBlock, Section, useAction } from '../components/ui.js';
import { etagOf, parseObject } from '../logic/commands.js';
import { formatAgo, formatTime } from '../logic/format.js';
import { useSession } from '../session.js';

export interface DeviceState {
  deviceId: string;
  shadow: {
    reported: Record<string, unknown>;
    desired: Record<string, unknown>;
    delta: Record<string, unknown>;
    version: number;
  };
  presence: {
    status: string;
    since: string | null;
    lastSeen: string | null;
    connectedAt: string | null;
    disconnectedAt: string | null;
  };
}

/** Presence: online or not, since when, and the last message. */
export function PresencePanel(props: { state: DeviceState | undefined; now: number }) {
  const presence = props.state?.presence;
  return (
    <div class="presence" data-testid="presence">
      <Badge status={presence?.status ?? 'unknown'} />
      <span>
        {presence?.since ? `since ${formatTime(presence.since)}` : ''} · last seen{' '}
        {formatAgo(presence?.lastSeen ?? null, props.now)}
      </span>
    </div>
  );
}

/**
 * The shadow, and an editor of the desired state: a JSON merge patch (RFC 7386) sent with `If-Match` on the
 * version shown, so that a change made meanwhile (by the device's report or another person) is a conflict
 * to look at, never a silent overwrite.
 */
export function ShadowPanel(props: { deviceId: string; state: DeviceState | undefined; reload(): void }) {
  const { api, can } = useSession();
  const [patch, setPatch] = useState('');
  const [conflict, setConflict] = useState<string | undefined>();
  const [saved, setSaved] = useState<number | undefined>();
  // The version the edit is based on: the one on screen when typing began, not whatever a refresh brought
  // since (the 5 s refresh must never turn a stale edit into an overwrite).
  const [base, setBase] = useState<number | undefined>();
  const shadow = props.state?.shadow;
  const editing = base ?? shadow?.version;
  const save = useAction(async () => {
    if (!shadow || editing === undefined) return;
    setConflict(undefined);
    setSaved(undefined);
    const parsed = parseObject(patch, 'The desired-state patch');
    if (!parsed.ok) throw new Error(parsed.error);
    try {
      const answer = await api.request<{ version: number }>(
        'command-dispatch',
        `/devices/${encodeURIComponent(props.deviceId)}/state/desired`,
        {
          method: 'PATCH',
          body: parsed.value,
          headers: { 'if-match': etagOf(editing) },
        },
      );
      setSaved(answer.data.version);
      setPatch('');
      setBase(undefined);
      props.reload();
    } catch (error) {
      if (error instanceof ApiError && error.status === 412) {
        setConflict(
          `The shadow changed since version ${editing} was read (a report or another edit). Nothing was saved: reload it, check the new state, and apply your change again.`,
        );
        return;
      }
      throw error;
    }
  });
  return (
    <Section title="Shadow" actions={<span data-testid="shadow-version">version {shadow?.version ?? '–'}</span>}>
      <div class="columns">
        <div>
          <h3>Reported</h3>
          <JsonBlock value={shadow?.reported ?? {}} label="Reported state" />
        </div>
        <div>
          <h3>Desired</h3>
          <JsonBlock value={shadow?.desired ?? {}} label="Desired state" />
        </div>
        <div>
          <h3>Delta</h3>
          <JsonBlock value={shadow?.delta ?? {}} label="Delta: desired values the device has not reported yet" />
        </div>
      </div>
      {can.commandsWrite && shadow ? (
        <form
          aria-label="Change the desired state"
          onSubmit={(event) => {
            event.preventDefault();
            void save.run();
          }}
        >
          <Field
            label={`Desired-state patch (JSON merge patch, applied if the shadow is still version ${shadow.version})`}
            hint="null removes a key"
          >
            <textarea
              name="desired"
              rows={3}
              value={patch}
              onInput={(e) => setPatch(e.currentTarget.value)}
              spellcheck={false}
            />
          </Field>
          <div class="row">
            <button type="submit" class="primary" disabled={save.busy || patch.trim() === ''}>
              Save desired state
            </button>
            <button
              type="button"
              onClick={() => {
                setBase(undefined);
                setConflict(undefined);
                props.reload();
              }}
            >
              Reload shadow
            </button>
          </div>
        </form>
      ) : null}
      {conflict ? (
        <p class="error" role="alert" data-testid="shadow-conflict">
          {conflict}
        </p>
      ) : null}
      {saved !== undefined ? (
        <p role="status" class="ok">
          Saved: the shadow is version {saved}; the device gets the delta.
        </p>
      ) : null}
      <ErrorNote error={save.error} />
    </Section>
  );
}
