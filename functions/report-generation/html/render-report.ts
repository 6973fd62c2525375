import type { ReportDocument, SeriesDocument } from '../report-repository.js';
import { mergeStats, type Stats } from '../stats.js';
import { escapeHtml, formatNumber } from './escape.js';
import { type ChartPoint, lineChart } from './svg-chart.js';

/** Devices listed in the per-device table; the CSV has them all. */
const MAX_DEVICE_ROWS = 500;

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;margin:24px auto;max-width:900px;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.meta{color:#57606a;margin:0 0 16px}table{border-collapse:collapse;width:100%;margin:8px 0}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:right}th:first-child,td:first-child{text-align:left}th{background:#f6f8fa}
.kpis{display:flex;gap:12px;flex-wrap:wrap}.kpi{border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;min-width:120px}
.kpi b{display:block;font-size:20px}.chart{display:block;margin:8px 0;max-width:100%;height:auto}
.chart-title{font-size:13px;font-weight:600;fill:#1b1f24}.tick{font-size:11px;fill:#57606a}.empty{font-size:13px;fill:#57606a}
.grid{stroke:#eaeef2;stroke-width:1}.axis,.tickmark{stroke:#8c959f;stroke-width:1}
.band{fill:#0969da;fill-opacity:.15;stroke:none}.line{fill:none;stroke:#0969da;stroke-width:1.6;stroke-linejoin:round}.dot{fill:#0969da}
.note{color:#57606a;font-size:12px}
@media print{body{margin:0;max-width:none}h2{break-after:avoid}.chart,table{break-inside:avoid}}
`;

/**
 * One self-contained, printable HTML page (no scripts, no external assets): key figures, the fleet summary
 * table, a line chart per metric (fleet average over its min/max band) and a per-device table.
 */
export async function renderReportHtml(report: ReportDocument, chunks: AsyncIterable<SeriesDocument>): Promise<string> {
  const fleet = new Map<string, ChartPoint[]>();
  const perDevice = new Map<string, Map<string, Stats>>();
  for await (const chunk of chunks) {
    if (chunk.kind === 'fleet') {
      const points = fleet.get(chunk.metric) ?? [];
      for (const p of chunk.points) points.push({ t: p.t.getTime(), avg: p.sum / p.count, min: p.min, max: p.max });
      fleet.set(chunk.metric, points);
      continue;
    }
    const deviceId = chunk.deviceId!;
    if (!perDevice.has(deviceId) && perDevice.size >= MAX_DEVICE_ROWS) continue;
    const metrics = perDevice.get(deviceId) ?? new Map<string, Stats>();
    for (const p of chunk.points) {
      const s: Stats = {
        count: p.count,
        sum: p.sum,
        min: p.min,
        max: p.max,
        first: p.first,
        firstTs: p.t.getTime(),
        last: p.last,
        lastTs: p.t.getTime(),
      };
      const known = metrics.get(chunk.metric);
      metrics.set(chunk.metric, known ? mergeStats(known, s) : s);
    }
    perDevice.set(deviceId, metrics);
  }

  const s = report.summary;
  const title = report.title ?? `Report ${report._id}`;
  const scope =
    'fleet' in report.scope
      ? 'whole fleet'
      : 'type' in report.scope
        ? `type ${report.scope.type}`
        : 'tag' in report.scope
          ? `tag ${report.scope.tag}`
          : `${report.deviceIds.length} device(s)`;
  const commands =
    Object.entries(s.commandsByStatus)
      .map(([status, n]) => `${escapeHtml(status)}: ${n}`)
      .join(', ') || 'none';
  const kpi = (label: string, value: string) =>
    `<div class="kpi">${escapeHtml(label)}<b>${escapeHtml(value)}</b></div>`;
  const summaryRows = report.metrics
    .map((m) => {
      const x = s.metrics[m];
      const cells = [
        escapeHtml(m),
        String(x?.count ?? 0),
        formatNumber(x?.min),
        formatNumber(x?.max),
        formatNumber(x?.avg),
      ];
      return `<tr>${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`;
    })
    .join('');
  const charts = report.metrics
    .map((m) =>
      lineChart(fleet.get(m) ?? [], {
        title: `${m}: fleet average with min–max band (UTC)`,
        bucketMs: Math.max(report.bucketMs, 60_000),
        from: report.from.getTime(),
        to: report.to.getTime(),
      }),
    )
    .join('\n');
  const deviceRows = [...perDevice]
    .flatMap(([deviceId, metrics]) =>
      report.metrics.map((m) => {
        const x = metrics.get(m);
        const values = [
          x?.count ?? 0,
          formatNumber(x?.min),
          formatNumber(x?.max),
          formatNumber(x ? x.sum / x.count : null),
        ];
        return (
          `<tr><td>${escapeHtml(deviceId)}</td><td style="text-align:left">${escapeHtml(m)}</td>` +
          `${values.map((v) => `<td>${v}</td>`).join('')}</tr>`
        );
      }),
    )
    .join('');
  const truncated =
    report.deviceIds.length > perDevice.size && perDevice.size >= MAX_DEVICE_ROWS
      ? `<p class="note">The first ${MAX_DEVICE_ROWS} devices are listed; the CSV holds every device.</p>`
      : '';

  const meta = [
    escapeHtml(scope),
    `${escapeHtml(report.from.toISOString())} – ${escapeHtml(report.to.toISOString())} (UTC)`,
    `interval ${escapeHtml(report.interval)}`,
    `from ${escapeHtml(report.sources.join(' + ') || 'no data')}`,
    `generated ${escapeHtml(report.createdAt.toISOString())}`,
  ].join(' · ');
  const kpis =
    kpi('devices', String(s.devices)) +
    kpi('reporting', String(s.devicesReporting)) +
    kpi('online ratio', `${(s.onlineRatio * 100).toFixed(1)} %`) +
    kpi('alerts raised', String(s.alerts.raised));
  const devicesHead =
    '<thead><tr><th>device</th><th style="text-align:left">metric</th>' +
    '<th>count</th><th>min</th><th>max</th><th>avg</th></tr></thead>';
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title><link rel="icon" href="data:,"><style>${STYLE}</style></head>
<body>
<h1>${escapeHtml(title)}</h1>
<p class="meta">${meta}</p>
<div class="kpis">${kpis}</div>
<p>Commands by status: ${commands}</p>
<h2>Fleet summary</h2>
<table class="summary"><thead><tr><th>metric</th><th>count</th><th>min</th><th>max</th><th>avg</th></tr></thead><tbody>${summaryRows}</tbody></table>
<h2>Charts</h2>
${charts}
<h2>Devices</h2>
<table class="devices">${devicesHead}<tbody>${deviceRows}</tbody></table>
${truncated}
</body></html>
`;
}
