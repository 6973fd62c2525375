/**
 * The devices list's filters as the URL holds them (`/devices?q=sim-&tag=lab&type=sensor&status=online`), and
 * which API answers them: registry statuses (active, disabled) and the id prefix filter in the registry;
 * `online` comes from telemetry-ingest's presence index; `offline` is registry pages whose devices the
 * presence does not count as online.
 */
export interface DeviceFilters {
  q: string;
  tag: string;
  type: string;
  status: '' | 'active' | 'disabled' | 'online' | 'offline';
}

const STATUSES = new Set(['', 'active', 'disabled', 'online', 'offline']);

export function filtersFrom(search: string): DeviceFilters {
  const params = new URLSearchParams(search);
  const status = params.get('status') ?? '';
  return {
    q: params.get('q') ?? '',
    tag: params.get('tag') ?? '',
    type: params.get('type') ?? '',
    status: (STATUSES.has(status) ? status : '') as DeviceFilters['status'],
  };
}

export function searchOf(filters: DeviceFilters): string {
  const params = new URLSearchParams();
  for (const key of ['q', 'tag', 'type', 'status'] as const) if (filters[key]) params.set(key, filters[key]);
  const text = params.toString();
  return text ? `?${text}` : '';
}

/** The registry query of one page (`cursor` from the previous page). */
export function registryQuery(filters: DeviceFilters, limit: number, cursor?: string): string {
  const params = new URLSearchParams({ limit: String(limit) });
  if (filters.q) params.set('idPrefix', filters.q);
  if (filters.tag) params.set('tag', filters.tag);
  if (filters.type) params.set('type', filters.type);
  if (filters.status === 'active' || filters.status === 'disabled') params.set('status', filters.status);
  if (cursor) params.set('cursor', cursor);
  return params.toString();
}

/** Whether a device of the registry page passes the filters the registry could not apply. */
export function passesClientFilters(
  device: { id: string; tags: string[]; type?: string | null },
  presence: string | undefined,
  filters: DeviceFilters,
): boolean {
  if (filters.q && !device.id.startsWith(filters.q)) return false;
  if (filters.tag && !device.tags.includes(filters.tag)) return false;
  if (filters.type && device.type !== filters.type) return false;
  if (filters.status === 'online') return presence === 'online';
  if (filters.status === 'offline') return presence !== 'online';
  return true;
}

/** Tags as typed in a form: comma or space separated, trimmed, each once. */
export function parseTags(text: string): string[] {
  return [...new Set(text.split(/[\s,]+/).filter(Boolean))];
}

/**
 * Back and forth through keyset pages: the cursors of the pages seen so far, so that "previous" goes back
 * without offsets (the API has none).
 */
export class CursorTrail {
  private readonly trail: (string | undefined)[] = [undefined];
  get current(): string | undefined {
    return this.trail.at(-1);
  }
  get page(): number {
    return this.trail.length;
  }
  get canGoBack(): boolean {
    return this.trail.length > 1;
  }
  forward(next: string): void {
    this.trail.push(next);
  }
  back(): void {
    if (this.trail.length > 1) this.trail.pop();
  }
  reset(): void {
    this.trail.length = 1;
  }
}
