import { Link } from 'wouter-preact';
import { formatCount } from '../logic/format.js';
import type { Share } from '../logic/overview.js';

/**
 * A whole split in parts as one bar (the fleet: online, offline, disabled), with a legend that says each part in
 * figures and links to its list. The bar is a picture of the legend: screen readers get its sentence, the legend
 * carries the figures for everyone.
 */
export function ShareBar(props: { title: string; shares: Share[]; hrefOf(key: string): string; testId?: string }) {
  const sentence = props.shares.map((share) => `${formatCount(share.count)} ${share.label} (${share.percent} %)`);
  return (
    <figure class="share" data-testid={props.testId}>
      <div class="share-bar" role="img" aria-label={`${props.title}: ${sentence.join(', ')}`}>
        {props.shares
          .filter((share) => share.percent > 0)
          .map((share) => (
            <span key={share.key} class={`share-part share-${share.key}`} style={{ width: `${share.percent}%` }} />
          ))}
      </div>
      <figcaption>
        <ul class="legend">
          {props.shares.map((share) => (
            <li key={share.key}>
              <span class={`swatch share-${share.key}`} aria-hidden="true" />
              <Link href={props.hrefOf(share.key)}>
                {formatCount(share.count)} {share.label}
              </Link>{' '}
              <span class="muted">{share.percent} %</span>
            </li>
          ))}
        </ul>
      </figcaption>
    </figure>
  );
}

/** Counts per category as a table whose last column draws each count as a bar (the longest = the largest). */
export function CountBars(props: {
  caption: string;
  what: string;
  rows: { key: string; label: string; count: number; percentOfLargest: number; href: string }[];
  testId?: string;
}) {
  return (
    <table class="count-bars" data-testid={props.testId}>
      <caption class="visually-hidden">{props.caption}</caption>
      <thead>
        <tr>
          <th scope="col">{props.what}</th>
          <th scope="col" class="num">
            Devices
          </th>
          <th scope="col" class="bar-cell">
            <span class="visually-hidden">Share of the largest</span>
          </th>
        </tr>
      </thead>
      <tbody>
        {props.rows.map((row) => (
          <tr key={row.key}>
            <td>
              <Link href={row.href}>{row.label}</Link>
            </td>
            <td class="num">{formatCount(row.count)}</td>
            <td class="bar-cell" aria-hidden="true">
              <span class="count-bar" style={{ width: `${row.percentOfLargest}%` }} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
