import type { ReportDocument, SeriesDocument } from './report-repository.js';
import { aggregate } from './report-view.js';

/**
 * CSV per RFC 4180: CRLF after every record (§2.1-2), a header record (§2.3), and a field holding a comma,
 * a double quote, CR or LF enclosed in double quotes with inner quotes doubled (§2.5-7).
 */
export function csvField(value: string | number): string {
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function csvRecord(fields: readonly (string | number)[]): string {
  return `${fields.map(csvField).join(',')}\r\n`;
}

export const CSV_MEDIA_TYPE = 'text/csv; charset=utf-8; header=present';

/**
 * The report as CSV, one record per series × bucket × metric (`series` = `fleet` or `device`), yielded
 * chunk by chunk from the stored series so a large report is never whole in memory. Numbers are written as
 * JavaScript's shortest round-trip form, so parsing a field gives back the exact number of the JSON report.
 * `bucket_end` is empty for `raw`, where a row is one sample.
 */
export async function* csvRows(report: ReportDocument, chunks: AsyncIterable<SeriesDocument>): AsyncIterable<string> {
  yield csvRecord(['series', 'device_id', 'metric', 'bucket_start', 'bucket_end', ...report.aggregations]);
  for await (const chunk of chunks) {
    let text = '';
    for (const point of chunk.points) {
      const start = point.t.getTime();
      const end = report.interval === 'raw' ? '' : new Date(start + report.bucketMs).toISOString();
      text += csvRecord([
        chunk.kind,
        chunk.deviceId ?? '',
        chunk.metric,
        point.t.toISOString(),
        end,
        ...report.aggregations.map((a) => aggregate(point, a)),
      ]);
    }
    yield text;
  }
}
