/** The console's one way to the capabilities: same-origin `/api/<capability>/…`, the key as a bearer token. */

export type Capability =
  | 'device-registry'
  | 'telemetry-ingest'
  | 'command-dispatch'
  | 'report-generation'
  | 'dead-letters'
  | 'jobs'
  | 'api-keys';

/** A refusal of an API, with the problem body it sent (`{error: {code, message, details}}`). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

export interface ApiAnswer<T> {
  status: number;
  data: T;
  headers: Headers;
}

export interface RequestOptions {
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

export interface Api {
  readonly key: string;
  request<T>(capability: Capability, path: string, options?: RequestOptions): Promise<ApiAnswer<T>>;
  get<T>(capability: Capability, path: string, signal?: AbortSignal): Promise<T>;
  /** A raw response (a file to download, a report page, a live stream). */
  fetch(capability: Capability, path: string, init?: RequestInit): Promise<Response>;
  url(capability: Capability, path: string): string;
}

export function createApi(key: string, onUnauthorized: () => void): Api {
  const url = (capability: Capability, path: string) => `/api/${capability}${path}`;
  const authorized = (init: RequestInit = {}): RequestInit => ({
    ...init,
    headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${key}` },
  });
  const api: Api = {
    key,
    url,
    fetch: (capability, path, init) => fetch(url(capability, path), authorized(init)),
    async request<T>(capability: Capability, path: string, options: RequestOptions = {}) {
      const response = await fetch(
        url(capability, path),
        authorized({
          method: options.method ?? 'GET',
          headers: {
            accept: 'application/json',
            ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
            ...options.headers,
          },
          ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
          ...(options.signal ? { signal: options.signal } : {}),
        }),
      );
      const text = await response.text();
      let data: unknown;
      try {
        data = text ? JSON.parse(text) : undefined;
      } catch {
        data = text;
      }
      if (!response.ok) {
        const problem = (data as { error?: { code?: string; message?: string; details?: unknown } })?.error;
        if (response.status === 401) onUnauthorized();
        throw new ApiError(
          response.status,
          problem?.code ?? `http_${response.status}`,
          problem?.message ?? `${capability} answered ${response.status}`,
          problem?.details,
        );
      }
      return { status: response.status, data: data as T, headers: response.headers };
    },
    async get<T>(capability: Capability, path: string, signal?: AbortSignal) {
      return (await api.request<T>(capability, path, signal ? { signal } : {})).data;
    },
  };
  return api;
}

/** What a person reads of a failure. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.status === 403) return `Not allowed with this key: ${error.message}`;
    return `${error.message} (${error.status} ${error.code})`;
  }
  if (error instanceof DOMException && error.name === 'AbortError') return 'cancelled';
  return error instanceof Error ? error.message : String(error);
}
