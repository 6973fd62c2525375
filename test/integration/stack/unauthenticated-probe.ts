/**
 * What a stranger on the machine can do to `npm start`: a script run inside the stack's network namespace
 * (`nsenter --net`) that knocks on every listening TCP port with no credential at all.
 *   - a CloudEvent, binary and structured, to `/` and to the Broker ingress path `/kiot/default`;
 *   - every operation of the port's OpenAPI document (`GET /openapi.json`) that the document says needs a
 *     credential (an app API key or a device's HTTP Basic), with a JSON body where it takes one;
 *   - an MQTT CONNECT without username and password, on ports that do not answer HTTP.
 * It prints one JSON line: per port, what each attempt got (an HTTP status, a CONNACK return code, or `none`
 * when the port does not speak that protocol: it closed the connection or never answered).
 */
export interface PortProbe {
  port: number;
  events: { path: string; mode: 'binary' | 'structured'; status: number | 'none' }[];
  /** Operations of the port's OpenAPI document that need a credential, asked without one. */
  app: { method: string; path: string; status: number | 'none' }[];
  /** Operations the document declares public (no credential needed). */
  publicOperations: string[];
  /** The CONNACK return code of an anonymous MQTT CONNECT (0 = accepted), or `none`. */
  mqtt: number | 'none';
}

export const PROBE_SCRIPT = String.raw`
import net from 'node:net';
const ports = JSON.parse(process.argv[1]);
// A port that does not speak HTTP may hold the connection open forever (a database reading a length): a bound
// on each attempt only decides "no HTTP here"; every assertion is about what an answer was, never its time.
const NO_ANSWER_MS = 15000;
async function http(port, method, path, headers, body) {
  try {
    const response = await fetch('http://127.0.0.1:' + port + path, {
      method, headers, body, redirect: 'manual', signal: AbortSignal.timeout(NO_ANSWER_MS),
    });
    await response.arrayBuffer().catch(() => undefined);
    return response.status;
  } catch {
    return 'none';
  }
}
const event = { specversion: '1.0', type: 'io.kiot.telemetry.received', source: 'stranger', id: 'forged-1',
  subject: 'sim-0001', datacontenttype: 'application/json', data: { msgId: 'forged', ts: new Date().toISOString(), metrics: { t: 1 } } };
async function events(port) {
  const out = [];
  for (const path of ['/', '/kiot/default']) {
    const { data, ...attributes } = event;
    const headers = { 'content-type': 'application/json' };
    for (const [key, value] of Object.entries(attributes)) if (key !== 'datacontenttype') headers['ce-' + key] = value;
    out.push({ path, mode: 'binary', status: await http(port, 'POST', path, headers, JSON.stringify(data)) });
    out.push({ path, mode: 'structured', status: await http(port, 'POST', path,
      { 'content-type': 'application/cloudevents+json' }, JSON.stringify(event)) });
  }
  return out;
}
async function app(port) {
  let doc;
  try {
    const response = await fetch('http://127.0.0.1:' + port + '/openapi.json', { signal: AbortSignal.timeout(NO_ANSWER_MS) });
    if (response.status !== 200) return { app: [], publicOperations: [] };
    doc = await response.json();
  } catch {
    return { app: [], publicOperations: [] };
  }
  const app = [], publicOperations = [];
  for (const [template, item] of Object.entries(doc.paths ?? {})) {
    const path = template.replace(/\{[^}]+\}/g, 'stranger-1');
    for (const [method, op] of Object.entries(item)) {
      if (!['get', 'post', 'put', 'patch', 'delete'].includes(method)) continue;
      const security = op.security ?? doc.security ?? [];
      if (security.length === 0) { publicOperations.push(method.toUpperCase() + ' ' + template); continue; }
      const body = op.requestBody ? '{}' : undefined;
      const headers = body ? { 'content-type': 'application/json' } : {};
      app.push({ method: method.toUpperCase(), path: template, status: await http(port, method.toUpperCase(), path, headers, body) });
    }
  }
  return { app, publicOperations };
}
function mqtt(port) {
  // MQTT 3.1.1 CONNECT (§3.1): protocol "MQTT", level 4, clean session, keep-alive 60, client id "stranger".
  const id = Buffer.from('stranger');
  const variable = Buffer.from([0, 4, 77, 81, 84, 84, 4, 2, 0, 60, 0, id.length]);
  const packet = Buffer.concat([Buffer.from([0x10, variable.length + id.length]), variable, id]);
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = Buffer.alloc(0);
    const done = (value) => { socket.destroy(); resolve(value); };
    socket.setTimeout(NO_ANSWER_MS, () => done('none'));
    socket.on('connect', () => socket.write(packet));
    socket.on('data', (chunk) => {
      data = Buffer.concat([data, chunk]);
      if (data.length >= 4) done(data[0] === 0x20 ? data[3] : 'none');
    });
    socket.on('error', () => done('none'));
    socket.on('close', () => done('none'));
  });
}
const results = [];
for (const port of ports) {
  const probe = { port, events: await events(port), ...(await app(port)) };
  probe.mqtt = probe.events.every((e) => e.status === 'none') ? await mqtt(port) : 'none';
  results.push(probe);
}
process.stdout.write(JSON.stringify(results));
`;

/** The TCP ports listening in a network namespace (`ss` run inside it). */
export function listeningPorts(ssOutput: string): number[] {
  const ports = new Set<number>();
  for (const line of ssOutput.split('\n')) {
    const local = line.trim().split(/\s+/)[3];
    const port = Number(local?.slice(local.lastIndexOf(':') + 1));
    if (Number.isInteger(port) && port > 0) ports.add(port);
  }
  return [...ports].sort((a, b) => a - b);
}
