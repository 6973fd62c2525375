import { escapeHtml, formatNumber } from './escape.js';

export interface ChartPoint {
  t: number;
  avg: number;
  min: number;
  max: number;
}

export interface ChartOptions {
  title: string;
  /** Bucket width in ms: a step longer than 1.5 buckets between points breaks the line (a gap, not a slope). */
  bucketMs: number;
  from: number;
  to: number;
  width?: number;
  height?: number;
}

const MARGIN = { top: 28, right: 16, bottom: 36, left: 64 };

/** About `count` round tick values covering [low, high] (steps of 1, 2, 2.5 or 5 × 10^n). */
export function niceTicks(low: number, high: number, count = 5): number[] {
  if (!(high > low)) return [low];
  const raw = (high - low) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let v = Math.ceil(low / step) * step; v <= high + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

const HOUR = 3_600_000;
const DAY = 86_400_000;
const TIME_STEPS = [
  60_000,
  5 * 60_000,
  15 * 60_000,
  30 * 60_000,
  HOUR,
  3 * HOUR,
  6 * HOUR,
  12 * HOUR,
  DAY,
  2 * DAY,
  7 * DAY,
  14 * DAY,
  28 * DAY,
  91 * DAY,
  182 * DAY,
  364 * DAY,
];

/** Round UTC instants for the time axis: the smallest step giving at most `max` ticks within [from, to]. */
export function timeTicks(from: number, to: number, max = 7): { ticks: number[]; step: number } {
  const step = TIME_STEPS.find((s) => Math.floor(to / s) - Math.ceil(from / s) + 1 <= max) ?? Math.max(1, to - from);
  const ticks: number[] = [];
  for (let t = Math.ceil(from / step) * step; t <= to; t += step) ticks.push(t);
  return { ticks, step };
}

export function timeLabel(ms: number, stepMs: number): string {
  const iso = new Date(ms).toISOString();
  return stepMs < DAY ? `${iso.slice(5, 10)} ${iso.slice(11, 16)}` : iso.slice(0, 10);
}

/**
 * A static line chart as inline SVG (SVG 1.1 paths, no script, no external font): the average as a line
 * over a shaded min/max band, y and time axes with labels in UTC. Printable and self-contained.
 */
export function lineChart(points: readonly ChartPoint[], options: ChartOptions): string {
  const width = options.width ?? 860;
  const height = options.height ?? 260;
  const plotW = width - MARGIN.left - MARGIN.right;
  const plotH = height - MARGIN.top - MARGIN.bottom;
  const title = `<text class="chart-title" x="${MARGIN.left}" y="18">${escapeHtml(options.title)}</text>`;
  const open =
    `<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" aria-label="${escapeHtml(options.title)}" ` +
    `viewBox="0 0 ${width} ${height}" width="${width}" height="${height}">`;
  if (points.length === 0) {
    return `${open}${title}<text class="empty" x="${width / 2}" y="${height / 2}" text-anchor="middle">no samples in this range</text></svg>`;
  }
  let low = Math.min(...points.map((p) => p.min));
  let high = Math.max(...points.map((p) => p.max));
  if (low === high) {
    low -= 1;
    high += 1;
  }
  const yTicks = niceTicks(low, high);
  low = Math.min(low, yTicks[0]!);
  high = Math.max(high, yTicks[yTicks.length - 1]!);
  const span = Math.max(1, options.to - options.from);
  const x = (t: number) => MARGIN.left + ((t - options.from) / span) * plotW;
  const y = (v: number) => MARGIN.top + plotH - ((v - low) / (high - low)) * plotH;
  const f = (n: number) => n.toFixed(1);

  const runs: ChartPoint[][] = [];
  for (const p of points) {
    const run = runs[runs.length - 1];
    const prev = run?.[run.length - 1];
    if (run && prev && p.t - prev.t <= 1.5 * options.bucketMs) run.push(p);
    else runs.push([p]);
  }
  const band = runs
    .map((run) => {
      const upper = run.map((p, i) => `${i === 0 ? 'M' : 'L'}${f(x(p.t))},${f(y(p.max))}`).join('');
      const lower = [...run]
        .reverse()
        .map((p) => `L${f(x(p.t))},${f(y(p.min))}`)
        .join('');
      return `${upper}${lower}Z`;
    })
    .join('');
  const line = runs
    .map((run) => run.map((p, i) => `${i === 0 ? 'M' : 'L'}${f(x(p.t))},${f(y(p.avg))}`).join(''))
    .join('');
  // A lone point has no segment to stroke: a dot shows it.
  const dots = runs
    .filter((run) => run.length === 1)
    .map((run) => `<circle class="dot" cx="${f(x(run[0]!.t))}" cy="${f(y(run[0]!.avg))}" r="2.5"/>`)
    .join('');

  const yAxis = yTicks
    .map(
      (v) =>
        `<line class="grid" x1="${MARGIN.left}" x2="${width - MARGIN.right}" y1="${f(y(v))}" y2="${f(y(v))}"/>` +
        `<text class="tick y" x="${MARGIN.left - 6}" y="${f(y(v) + 4)}" text-anchor="end">${escapeHtml(formatNumber(v))}</text>`,
    )
    .join('');
  const time = timeTicks(options.from, options.to);
  const xAxis = time.ticks
    .map((t) => {
      const anchor = t === options.from ? 'start' : t === options.to ? 'end' : 'middle';
      const label = escapeHtml(timeLabel(t, time.step));
      return (
        `<line class="tickmark" x1="${f(x(t))}" x2="${f(x(t))}" y1="${MARGIN.top + plotH}" y2="${MARGIN.top + plotH + 4}"/>` +
        `<text class="tick x" x="${f(x(t))}" y="${height - 14}" text-anchor="${anchor}">${label}</text>`
      );
    })
    .join('');
  const axes =
    `<line class="axis" x1="${MARGIN.left}" x2="${MARGIN.left}" y1="${MARGIN.top}" y2="${MARGIN.top + plotH}"/>` +
    `<line class="axis" x1="${MARGIN.left}" x2="${width - MARGIN.right}" y1="${MARGIN.top + plotH}" y2="${MARGIN.top + plotH}"/>`;
  return `${open}${title}${yAxis}${axes}${xAxis}<path class="band" d="${band}"/><path class="line" d="${line}"/>${dots}</svg>`;
}
