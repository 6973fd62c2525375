import { writeFileSync } from 'node:fs';
import { relative } from 'node:path';

/**
 * Something to look at while the stack runs: after `firstAfterMs`, then every five minutes, a report of the
 * simulated fleet since the stack started, as a self-contained HTML page in `file` (the interval is chosen
 * from the range: raw samples at first, rollups as the run grows). A report that fails is skipped quietly:
 * the next one tries again.
 */
export function startFleetReports(options: {
  reportsUrl: string;
  apiKey: string;
  file: string;
  firstAfterMs: number;
  say: (line: string) => void;
}): () => void {
  const from = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const headers = { authorization: `Bearer ${options.apiKey}`, 'content-type': 'application/json' };
  const report = async () => {
    const to = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const created = await fetch(`${options.reportsUrl}/reports`, {
      method: 'POST',
      headers,
      body: JSON.stringify({
        scope: { fleet: true },
        from,
        to,
        metrics: ['temperature', 'humidity'],
        title: 'Simulated fleet since the stack started',
      }),
    });
    if (!created.ok) return;
    const { id } = (await created.json()) as { id?: string };
    if (!id) return;
    const page = await fetch(`${options.reportsUrl}/reports/${id}?format=html`, { headers });
    if (!page.ok) return;
    writeFileSync(options.file, await page.text());
    options.say(
      `the simulated fleet's report is in ${relative(process.cwd(), options.file)} (JSON: ${options.reportsUrl}/reports/${id}, CSV: ?format=csv)`,
    );
  };
  let timer = setTimeout(function tick() {
    void report().catch(() => undefined);
    timer = setTimeout(tick, 300_000);
  }, options.firstAfterMs);
  return () => clearTimeout(timer);
}
