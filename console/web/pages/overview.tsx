import { Link } from 'wouter-preact';
import { TimeChart } from '../components/chart.js';
import { useLoad } from '../components/hooks.js';
import { PageTitle } from '../components/layout.js';
import { CountBars, ShareBar } from '../components/shares.js';
import { Badge, ErrorNote, Section, Stat } from '../components/ui.js';
import { formatAgo, formatCount } from '../logic/format.js';
import { fleetShares, type OverviewInput, overviewFigures, typeRows } from '../logic/overview.js';
import { useSession } from '../session.js';
import type { AlertView, Page } from './types.js';

type DeviceSummary = NonNullable<OverviewInput['devices']> & { byType: { type: string | null; devices: number }[] };

interface TelemetrySummary {
  online: number;
  messagesPerSecond: number;
  rate: { t: string; messages: number }[];
  openAlerts: number;
}
interface DeadLetterSummary {
  pending: number;
  failingDevices: {
    deviceId: string;
    refusals: number;
    lastAt: string;
    lastType: string;
    lastError: { code: number | null; text?: string };
  }[];
}

/** Settles each source on its own: a key without a scope (403) or a function that is down leaves a gap, not an error page. */
const settle = async <T,>(promise: Promise<T>) => {
  try {
    return { value: await promise };
  } catch (error) {
    return { error };
  }
};

/** The fleet at a glance, every figure a link to its list; refreshed every 2 s. */
export function OverviewPage() {
  const { api, can } = useSession();
  const overview = useLoad(
    async (signal) => {
      const [devices, telemetry, commands, jobsRunning, jobsScheduled, deadLetters, alerts] = await Promise.all([
        can.devicesRead ? settle(api.get<DeviceSummary>('device-registry', '/device-summary', signal)) : undefined,
        can.telemetryRead
          ? settle(api.get<TelemetrySummary>('telemetry-ingest', '/telemetry-summary', signal))
          : undefined,
        can.commandsRead
          ? settle(api.get<{ inFlight: number }>('command-dispatch', '/command-summary', signal))
          : undefined,
        can.jobsRead
          ? settle(api.get<{ items: { status: string }[] }>('jobs', '/jobs?status=IN_PROGRESS&limit=500', signal))
          : undefined,
        can.jobsRead
          ? settle(api.get<{ items: { status: string }[] }>('jobs', '/jobs?status=SCHEDULED&limit=500', signal))
          : undefined,
        can.deadLettersRead
          ? settle(api.get<DeadLetterSummary>('dead-letters', '/dead-letter-summary', signal))
          : undefined,
        can.telemetryRead
          ? settle(api.get<Page<AlertView>>('telemetry-ingest', '/alerts?status=active&limit=5', signal))
          : undefined,
      ]);
      const jobs =
        jobsRunning?.value && jobsScheduled?.value
          ? { items: [...jobsRunning.value.items, ...jobsScheduled.value.items] }
          : undefined;
      const input: OverviewInput = {
        ...(devices?.value ? { devices: devices.value } : {}),
        ...(telemetry?.value ? { telemetry: telemetry.value } : {}),
        ...(commands?.value ? { commands: commands.value } : {}),
        ...(jobs ? { jobs } : {}),
        ...(deadLetters?.value ? { deadLetters: deadLetters.value } : {}),
      };
      const errors = [devices, telemetry, commands, jobsRunning, deadLetters, alerts]
        .map((answer) => answer?.error)
        .filter(Boolean);
      return {
        figures: overviewFigures(input),
        rate: telemetry?.value?.rate ?? [],
        failing: deadLetters?.value?.failingDevices ?? [],
        byType: devices?.value ? typeRows(devices.value.byType) : undefined,
        latestAlerts: alerts?.value?.items,
        errors,
        at: Date.now(),
      };
    },
    [api],
    2_000,
  );
  const data = overview.data;
  const f = data?.figures ?? {};
  const count = (value: number | undefined) => (value === undefined ? '–' : formatCount(value));
  const rate = data?.rate ?? [];
  const fleet = fleetShares(f);
  return (
    <>
      <PageTitle
        sub={data ? <span aria-live="off">Updated {formatAgo(data.at, Date.now())}, every 2 s</span> : 'Loading…'}
      >
        Fleet overview
      </PageTitle>
      <ErrorNote error={overview.error} />
      {data?.errors.map((error, i) => (
        <ErrorNote key={i} error={error} what="One figure could not be read" />
      ))}
      <section aria-labelledby="devices-heading" class="panel">
        <h2 id="devices-heading">Devices</h2>
        <div class="stats">
          <Stat label="registered" value={count(f.total)} href="/devices" testId="stat-total" />
          <Stat label="online" value={count(f.online)} href="/devices?status=online" testId="stat-online" />
          <Stat label="offline" value={count(f.offline)} href="/devices?status=offline" testId="stat-offline" />
          <Stat label="disabled" value={count(f.disabled)} href="/devices?status=disabled" testId="stat-disabled" />
        </div>
        {fleet && (f.total ?? 0) > 0 ? (
          <ShareBar title="The fleet" shares={fleet} hrefOf={(key) => `/devices?status=${key}`} testId="fleet-shares" />
        ) : null}
      </section>
      <section aria-labelledby="activity-heading" class="panel">
        <h2 id="activity-heading">Activity</h2>
        <div class="stats">
          <Stat
            label="messages / s (last 10 s)"
            value={f.messagesPerSecond === undefined ? '–' : formatCount(f.messagesPerSecond)}
            testId="stat-rate"
          />
          <Stat label="open alerts" value={count(f.openAlerts)} href="/alerts" testId="stat-alerts" />
          <Stat
            label="failing devices (last hour)"
            value={count(f.failingDevices)}
            href="/dead-letters?status=pending"
            testId="stat-failing"
          />
          <Stat label="commands in flight" value={count(f.commandsInFlight)} href="/commands" testId="stat-commands" />
          <Stat label="jobs in flight" value={count(f.jobsInFlight)} href="/jobs" testId="stat-jobs" />
          <Stat
            label="dead letters waiting"
            value={count(f.deadLettersWaiting)}
            href="/dead-letters?status=pending"
            testId="stat-dead-letters"
          />
        </div>
        {rate.length > 0 ? (
          <TimeChart
            title="Messages stored per second"
            caption={`Messages stored per second, last minute: now ${formatCount(rate.at(-1)?.messages ?? 0)}/s`}
            data={[rate.map((r) => Date.parse(r.t) / 1000), rate.map((r) => r.messages)]}
            height={140}
            testId="rate-chart"
          />
        ) : null}
      </section>
      <div class="overview-columns">
        {data?.byType && data.byType.length > 0 ? (
          <Section title="Devices by type">
            <CountBars
              caption="Registered devices per type, most first"
              what="Type"
              testId="devices-by-type"
              rows={data.byType.map((row) => ({
                key: row.label,
                label: row.label,
                count: row.devices,
                percentOfLargest: row.percentOfLargest,
                href: row.type === null ? '/devices' : `/devices?type=${encodeURIComponent(row.type)}`,
              }))}
            />
          </Section>
        ) : null}
        {data?.latestAlerts ? (
          <Section title="Latest open alerts" actions={<Link href="/alerts">All alerts</Link>}>
            {data.latestAlerts.length === 0 ? (
              <p class="muted">No alert is open.</p>
            ) : (
              <table data-testid="latest-alerts">
                <caption class="visually-hidden">The five most recently raised alerts still open</caption>
                <thead>
                  <tr>
                    <th scope="col">Device</th>
                    <th scope="col">Condition</th>
                    <th scope="col">Severity</th>
                    <th scope="col">Raised</th>
                  </tr>
                </thead>
                <tbody>
                  {data.latestAlerts.map((alert) => (
                    <tr key={alert.id}>
                      <td>
                        <Link href={`/devices/${encodeURIComponent(alert.deviceId)}`}>{alert.deviceId}</Link>
                      </td>
                      <td>
                        {alert.metric} {alert.comparison} {alert.threshold}
                        {alert.raisedValue === null ? '' : ` (was ${alert.raisedValue})`}
                      </td>
                      <td>
                        <Badge status={alert.severity} />
                      </td>
                      <td>{formatAgo(alert.raisedAt, Date.now())}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </Section>
        ) : null}
      </div>
      {data && data.failing.length > 0 ? (
        <Section title="Failing devices">
          <table>
            <caption class="visually-hidden">Devices whose messages were refused in the last hour</caption>
            <thead>
              <tr>
                <th scope="col">Device</th>
                <th scope="col">Refusals</th>
                <th scope="col">Last</th>
                <th scope="col">Why</th>
              </tr>
            </thead>
            <tbody>
              {data.failing.slice(0, 10).map((device) => (
                <tr key={device.deviceId}>
                  <td>
                    <Link href={`/devices/${encodeURIComponent(device.deviceId)}`}>{device.deviceId}</Link>
                  </td>
                  <td>{device.refusals}</td>
                  <td>{formatAgo(device.lastAt, Date.now())}</td>
                  <td class="wrap">{device.lastError.text ?? device.lastType}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </Section>
      ) : null}
    </>
  );
}
