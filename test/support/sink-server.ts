import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type CloudEvent, isCloudEventRequest, parseCloudEvent } from '../../shared/cloudevents.js';

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer;
  /** The CloudEvent, when the request carried one. */
  event?: CloudEvent<unknown>;
  at: number;
}

export interface SinkAnswer {
  status: number;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Hold the answer this long (a slow sink). */
  delayMs?: number;
}

export interface SinkServer {
  url: string;
  port: number;
  received: ReceivedRequest[];
  /** Decides each answer; default 202. Replace it at any time. */
  respond: (request: ReceivedRequest) => SinkAnswer;
  /** Resolves once `predicate` holds for what was received (polls the list, not the clock). */
  waitFor(predicate: (received: ReceivedRequest[]) => boolean, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

function headerRecord(message: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(message.headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(',') : value;
  }
  return out;
}

/** A real HTTP server standing in for K_SINK or a Trigger subscriber in tests; it records what it gets. */
export async function startSinkServer(port = 0): Promise<SinkServer> {
  const waiters = new Set<() => void>();
  const sink: SinkServer = {
    url: '',
    port: 0,
    received: [],
    respond: () => ({ status: 202 }),
    waitFor(predicate, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        if (predicate(sink.received)) return resolve();
        const check = () => {
          if (!predicate(sink.received)) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`sink condition not met within ${timeoutMs} ms (${sink.received.length} received)`));
        }, timeoutMs);
        waiters.add(check);
      });
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const headers = headerRecord(req);
      const body = Buffer.concat(chunks);
      const received: ReceivedRequest = {
        method: req.method ?? '',
        path: req.url ?? '/',
        headers,
        body,
        at: Date.now(),
      };
      if (isCloudEventRequest(headers)) {
        try {
          received.event = parseCloudEvent(headers, body);
        } catch {
          // recorded without an event: the test asserts on it
        }
      }
      const answer = sink.respond(received);
      const finish = () => {
        sink.received.push(received);
        res.writeHead(answer.status, answer.headers);
        res.end(answer.body);
        for (const waiter of [...waiters]) waiter();
      };
      if (answer.delayMs) setTimeout(finish, answer.delayMs);
      else finish();
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  sink.port = (server.address() as AddressInfo).port;
  sink.url = `http://127.0.0.1:${sink.port}/`;
  return sink;
}
