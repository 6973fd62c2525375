import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import { Link, useLocation } from 'wouter-preact';
import { useSession } from '../session.js';

const NAV = [
  { href: '/', label: 'Overview' },
  { href: '/devices', label: 'Devices' },
  { href: '/alerts', label: 'Alerts' },
  { href: '/commands', label: 'Commands' },
  { href: '/jobs', label: 'Jobs' },
  { href: '/reports', label: 'Reports' },
  { href: '/dead-letters', label: 'Dead letters' },
];

const isCurrent = (href: string, location: string) =>
  href === '/' ? location === '/' : location === href || location.startsWith(`${href}/`);

/** The frame of every view: skip link, header with navigation and the key, the view's main landmark. */
export function Layout(props: { children: ComponentChildren }) {
  const session = useSession();
  const [location] = useLocation();
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <Link href="/" class="brand">
          kiot console
        </Link>
        <nav aria-label="Main">
          <ul>
            {NAV.map((item) => (
              <li key={item.href}>
                <Link href={item.href} aria-current={isCurrent(item.href, location) ? 'page' : undefined}>
                  {item.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <div class="who">
          <span>
            Key <strong>{session.self.name ?? session.self.id}</strong>
          </span>
          {session.readOnly ? (
            <span class="badge badge-neutral" data-testid="read-only">
              read-only
            </span>
          ) : null}
          <button type="button" class="quiet" onClick={session.signOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {props.children}
      </main>
    </>
  );
}

/** A view's title: the page's <h1> and the document title; focus moves here when the view changes. */
export function PageTitle(props: { children: string; sub?: ComponentChildren }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${props.children} · kiot console`;
    ref.current?.focus({ preventScroll: true });
  }, [props.children]);
  return (
    <div class="page-title">
      <h1 ref={ref} tabIndex={-1}>
        {props.children}
      </h1>
      {props.sub ? <div class="sub">{props.sub}</div> : null}
    </div>
  );
}
