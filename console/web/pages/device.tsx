import { Link, useLocation, useSearch } from 'wouter-preact';
import { useLoad, useNow } from '../components/hooks.js';
import { PageTitle } from '../components/layout.js';
import { Badge, ErrorNote, Loading, Section } from '../components/ui.js';
import { formatAgo, formatTime } from '../logic/format.js';
import { type RangeId, rangeOf } from '../logic/series.js';
import { useSession } from '../session.js';
import { CommandsPanel } from './device-commands.js';
import { RegistryPanel } from './device-registry.js';
import { type DeviceState, PresencePanel, ShadowPanel } from './device-state.js';
import { TelemetryPanel } from './device-telemetry.js';
import type { AlertView, DeadLetterView, DeviceView, Page } from './types.js';

/** One device: presence, registry, shadow with the desired-state editor, telemetry, refusals, commands, alerts. */
export function DevicePage(props: { id: string }) {
  const { api, can } = useSession();
  const search = useSearch();
  const [location, navigate] = useLocation();
  const range = rangeOf(new URLSearchParams(search).get('range')).id;
  const now = useNow(5_000);
  const path = `/devices/${encodeURIComponent(props.id)}`;

  const device = useLoad((signal) => api.get<DeviceView>('device-registry', path, signal), [api, props.id]);
  const state = useLoad(
    (signal) =>
      can.telemetryRead
        ? api.get<DeviceState>('telemetry-ingest', `${path}/state`, signal)
        : Promise.resolve(undefined),
    [api, props.id],
    5_000,
  );
  const refusals = useLoad(
    (signal) =>
      can.deadLettersRead
        ? api.get<Page<DeadLetterView>>(
            'dead-letters',
            `/dead-letters?subject=${encodeURIComponent(props.id)}&limit=10`,
            signal,
          )
        : Promise.resolve(undefined),
    [api, props.id],
  );
  const alerts = useLoad(
    (signal) =>
      can.telemetryRead
        ? api.get<Page<AlertView>>(
            'telemetry-ingest',
            `/alerts?deviceId=${encodeURIComponent(props.id)}&limit=10`,
            signal,
          )
        : Promise.resolve(undefined),
    [api, props.id],
  );

  return (
    <>
      <PageTitle sub={<PresencePanel state={state.data} now={now} />}>{`Device ${props.id}`}</PageTitle>
      <p>
        <Link href="/devices">All devices</Link>
      </p>
      <ErrorNote error={device.error} />
      {device.data ? (
        <p>
          Status <Badge status={device.data.status} />
        </p>
      ) : device.loading ? (
        <Loading what="the device" />
      ) : null}
      {device.data ? <RegistryPanel device={device.data} reload={device.reload} /> : null}
      <TelemetryPanel
        deviceId={props.id}
        range={range}
        onRange={(next: RangeId) =>
          navigate(`${location}${next === 'live' ? '' : `?range=${next}`}`, { replace: true })
        }
      />
      {can.telemetryRead ? (
        <>
          <ErrorNote error={state.error} />
          <ShadowPanel deviceId={props.id} state={state.data} reload={state.reload} />
        </>
      ) : null}
      {can.commandsRead ? <CommandsPanel deviceId={props.id} /> : null}
      {can.deadLettersRead ? (
        <Section title="Recent refusals">
          <ErrorNote error={refusals.error} />
          {refusals.data?.items.length === 0 ? <p class="muted">Nothing of this device was refused.</p> : null}
          {refusals.data && refusals.data.items.length > 0 ? (
            <ul class="plain">
              {refusals.data.items.map((letter) => (
                <li key={letter.id}>
                  {formatAgo(letter.lastDeadLetteredAt, now)} · <code>{letter.event.type}</code> ·{' '}
                  {letter.error.code ?? ''} {letter.error.text ?? ''}{' '}
                  <Link href={`/dead-letters?subject=${encodeURIComponent(props.id)}`}>inspect</Link>
                </li>
              ))}
            </ul>
          ) : null}
        </Section>
      ) : null}
      {can.telemetryRead ? (
        <Section title="Alerts of this device">
          <ErrorNote error={alerts.error} />
          {alerts.data?.items.length === 0 ? <p class="muted">No alerts.</p> : null}
          {alerts.data && alerts.data.items.length > 0 ? (
            <ul class="plain">
              {alerts.data.items.map((alert) => (
                <li key={alert.id}>
                  <Badge status={alert.status === 'active' ? alert.severity : 'cleared'} label={alert.status} />{' '}
                  {alert.metric} {alert.comparison} {alert.threshold} · raised {formatTime(alert.raisedAt)}
                  {alert.acknowledgedAt ? ' · acknowledged' : ''}
                </li>
              ))}
            </ul>
          ) : null}
        </Section>
      ) : null}
    </>
  );
}
