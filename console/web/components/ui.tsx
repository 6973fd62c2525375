import type { ComponentChildren, JSX } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { Link } from 'wouter-preact';
import { describeError } from '../api.js';
import { statusTone } from '../logic/commands.js';
import { formatJson } from '../logic/format.js';

export function Badge(props: { status: string; label?: string }) {
  return <span class={`badge badge-${statusTone(props.status)}`}>{props.label ?? props.status}</span>;
}

/** A failure in words, announced to screen readers. */
export function ErrorNote(props: { error: unknown; what?: string }) {
  if (!props.error) return null;
  return (
    <p class="error" role="alert">
      {props.what ? `${props.what}: ` : ''}
      {describeError(props.error)}
    </p>
  );
}

export function Loading(props: { what?: string }) {
  return (
    <p class="muted" aria-live="polite">
      Loading{props.what ? ` ${props.what}` : ''}…
    </p>
  );
}

/** A page section with a heading (sections are the landmarks a screen reader jumps between). */
export function Section(props: {
  title: string;
  id?: string;
  children: ComponentChildren;
  actions?: ComponentChildren;
}) {
  const id = props.id ?? `section-${props.title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  return (
    <section class="panel" aria-labelledby={id}>
      <div class="panel-head">
        <h2 id={id}>{props.title}</h2>
        {props.actions ? <div class="actions">{props.actions}</div> : null}
      </div>
      {props.children}
    </section>
  );
}

/** One labelled form field; the label is always visible (placeholders are no labels). */
export function Field(props: { label: string; hint?: string; children: JSX.Element }) {
  return (
    // biome-ignore lint/a11y/noLabelWithoutControl: the control is `children`, an <input>, <select> or <textarea>
    <label class="field">
      <span class="field-label">{props.label}</span>
      {props.children}
      {props.hint ? <span class="hint">{props.hint}</span> : null}
    </label>
  );
}

export function JsonBlock(props: { value: unknown; label: string }) {
  return (
    // A scrolling region takes keyboard focus (WCAG 2.1.1), so a keyboard can scroll it.
    // biome-ignore lint/a11y/noNoninteractiveTabindex: see above; axe's scrollable-region-focusable asks the same
    <section class="json" tabIndex={0} aria-label={props.label}>
      <pre>{formatJson(props.value)}</pre>
    </section>
  );
}

/**
 * A modal dialog on the native <dialog>: focus moves in and is trapped by the browser, Escape closes it,
 * focus returns to what opened it.
 */
export function Dialog(props: { title: string; open: boolean; onClose(): void; children: ComponentChildren }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (props.open && !dialog.open) dialog.showModal();
    if (!props.open && dialog.open) dialog.close();
  }, [props.open]);
  const titleId = `dialog-${props.title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  return (
    <dialog ref={ref} aria-labelledby={titleId} onClose={props.onClose} onCancel={props.onClose}>
      <div class="dialog-head">
        <h2 id={titleId}>{props.title}</h2>
        <button type="button" class="quiet" onClick={props.onClose} aria-label="Close">
          ×
        </button>
      </div>
      {props.open ? props.children : null}
    </dialog>
  );
}

/** A secret the API shows once: readable, selectable, copyable, and said to be shown once. */
export function SecretOnce(props: { label: string; secret: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <div class="secret" role="status">
      <p>
        <strong>{props.label}</strong> — shown this once; store it now.
      </p>
      <code data-testid="secret">{props.secret}</code>
      <button
        type="button"
        onClick={() => {
          void navigator.clipboard?.writeText(props.secret).then(() => setCopied(true));
        }}
      >
        {copied ? 'Copied' : 'Copy'}
      </button>
    </div>
  );
}

/** A figure of the overview: a number, what it is, and the list it links to. */
export function Stat(props: { label: string; value: string; href?: string; note?: string; testId?: string }) {
  const body = (
    <>
      <span class="stat-value" data-testid={props.testId}>
        {props.value}
      </span>
      <span class="stat-label">{props.label}</span>
      {props.note ? <span class="stat-note">{props.note}</span> : null}
    </>
  );
  return props.href ? (
    <Link class="stat" href={props.href}>
      {body}
    </Link>
  ) : (
    <div class="stat">{body}</div>
  );
}

/** Older/newer page buttons for keyset pagination. */
export function Pager(props: {
  page: number;
  canBack: boolean;
  canForward: boolean;
  onBack(): void;
  onForward(): void;
}) {
  return (
    <nav class="pager" aria-label="Pages">
      <button type="button" onClick={props.onBack} disabled={!props.canBack}>
        Previous page
      </button>
      <span aria-live="polite">Page {props.page}</span>
      <button type="button" onClick={props.onForward} disabled={!props.canForward}>
        Next page
      </button>
    </nav>
  );
}

/** A form's submit with its outcome: runs `action`, shows its error, disables itself meanwhile. */
export function useAction<A extends unknown[]>(action: (...args: A) => Promise<void>) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const run = async (...args: A) => {
    setBusy(true);
    setError(undefined);
    try {
      await action(...args);
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, run, setError };
}
