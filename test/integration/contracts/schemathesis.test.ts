import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FunctionStack, startFunctionStack } from '../../support/function-stack.js';
import { type SinkServer, startSinkServer } from '../../support/sink-server.js';
import { ROOT } from '../../unit/knative/lib/manifests.js';

// schemathesis (PyPI, pinned in scripts/schemathesis.sh) with every check it has — server errors, status codes,
// content types, headers and bodies against the document, schema-valid data accepted and schema-violating data
// refused, missing required headers, undeclared methods (405 with Allow), ignored auth, use after delete,
// resource availability — and the stateful phase (links inferred from the documents), against every function
// of knative/ started as its manifest says, over HTTP, against the test services, with an admin key.
// Examples per operation are bounded (MAX_EXAMPLES) to keep CI's time sensible; the seed is printed on failure.

const MAX_EXAMPLES = Number(process.env.KIOT_SCHEMATHESIS_EXAMPLES ?? 10);
// schemathesis' defaults (config/_checks.py of 4.32.5).
const DEFAULT_POSITIVE = ['2xx', '3xx', '401', '403', '404', '409', '429', '5xx'];
const MISSING_HEADER_DEFAULT = ['400', '401', '403', '406', '415', '422'];
const NEGATIVE_DEFAULT = ['400', '401', '403', '404', '405', '406', '409', '415', '422', '428', '429', '5xx'];

interface Operation {
  operationId?: string;
  'x-kiot-rules'?: string[];
  security?: unknown[];
  parameters?: { name: string; in: string; schema: Record<string, unknown> }[];
  requestBody?: { required: boolean };
  responses: Record<string, unknown>;
}
interface Document {
  paths: Record<string, Record<string, Operation>>;
}

/** Every `$ref` of a document that does not point at something in it. */
function danglingRefs(doc: unknown): string[] {
  const out: string[] = [];
  const resolve = (pointer: string) =>
    pointer
      .slice(2)
      .split('/')
      .map((part) => part.replaceAll('~1', '/').replaceAll('~0', '~'))
      .reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], doc);
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(walk);
    else if (node && typeof node === 'object') {
      for (const [key, value] of Object.entries(node)) {
        if (key === '$ref' && typeof value === 'string' && (!value.startsWith('#/') || resolve(value) === undefined))
          out.push(value);
        else walk(value);
      }
    }
  };
  walk(doc);
  return out;
}

/** A concrete path for a documented one: each parameter filled with a value its schema accepts. */
const samplePath = (path: string) => path.replace(/\{[^}]+\}/g, '0123456789abcdef');

/**
 * The per-operation configuration: an operation whose document lists rules JSON Schema cannot state
 * (`x-kiot-rules`: the clock, one field against another, an opaque cursor) may refuse schema-valid data with
 * the status each rule names; every other check stays as it is.
 */
function configFor(doc: Document): string {
  const lines = [
    // RFC 6585 §3: 428 Precondition Required is the answer to a write without its required If-Match.
    '[checks.missing_required_header]',
    `expected-statuses = ${JSON.stringify([...MISSING_HEADER_DEFAULT, '428'])}`,
    '',
    // RFC 6585 §5: 431 refuses a request whose line and headers pass the server's limit (16 KiB), as long
    // schema-violating query values can (shared/serve.ts answers it with a problem body; every document lists it).
    '[checks.negative_data_rejection]',
    `expected-statuses = ${JSON.stringify([...NEGATIVE_DEFAULT, '431'])}`,
    '',
  ];
  for (const operations of Object.values(doc.paths)) {
    for (const op of Object.values(operations)) {
      if (!op['x-kiot-rules'] || !op.operationId) continue;
      // Each rule names the status it is answered with, e.g. "(400)" or "(400/422)".
      const statuses = new Set(op['x-kiot-rules'].flatMap((rule) => rule.match(/\b[45]\d\d\b/g) ?? []));
      lines.push(
        '[[operations]]',
        `include-operation-id = "${op.operationId}"`,
        `checks.positive_data_acceptance.expected-statuses = ${JSON.stringify([...DEFAULT_POSITIVE, ...statuses])}`,
        '',
      );
    }
  }
  return lines.join('\n');
}

function run(command: string, args: string[], cwd: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd, env: { ...process.env, NO_COLOR: '1' } });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('close', (code) => resolve({ code, output }));
  });
}

describe('schemathesis finds nothing in any function', () => {
  let sink: SinkServer;
  let stack: FunctionStack;
  let st: string;
  const dir = mkdtempSync(join(tmpdir(), 'kiot-schemathesis-'));

  beforeAll(async () => {
    const install = spawnSync('bash', ['scripts/schemathesis.sh'], { cwd: ROOT, encoding: 'utf8' });
    if (install.status !== 0) throw new Error(`schemathesis could not be installed: ${install.stderr}`);
    st = install.stdout.trim();
    sink = await startSinkServer();
    // The registry keeps devices for a broker that asks (hooks): hundreds of generated devices would otherwise
    // each rewrite the shared test Mosquitto's dynamic-security file.
    // Not the console: a web page whose /api/ is the functions' own APIs, proxied with the user's key. Not the
    // cluster-local `<name>-events` receivers: they serve no app route (their contract is the AsyncAPI document's
    // CloudEvents); the app Service of the same function serves the document and the API.
    stack = await startFunctionStack({
      sink: sink.url,
      env: { BROKER_ACCESS: 'hooks' },
      only: (name) => name !== 'console' && !name.endsWith('-events'),
    });
  }, 300_000);

  afterAll(async () => {
    await stack?.stop();
    await sink?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('every function of knative/ is tested', () => {
    expect(stack.functions.map((f) => f.name).sort()).toEqual(
      expect.arrayContaining(['api-keys', 'command-dispatch', 'dead-letters', 'device-registry', 'telemetry-ingest']),
    );
  });

  it('serves OpenAPI 3.1 documents that validate against the meta-schema, with no dangling $ref', async () => {
    for (const fn of stack.functions) {
      const doc = (await (await fetch(`${fn.base}/openapi.json`)).json()) as Document;
      const validator = new Validator();
      const result = await validator.validate(doc as never);
      expect({ name: fn.name, valid: result.valid, errors: result.errors }).toEqual({
        name: fn.name,
        valid: true,
        errors: undefined,
      });
      expect(validator.version).toBe('3.1');
      expect({ name: fn.name, dangling: danglingRefs(doc) }).toEqual({ name: fn.name, dangling: [] });
      // Path parameters carry the schema the server checks (a bare string would document nothing).
      for (const [path, operations] of Object.entries(doc.paths)) {
        for (const [method, op] of Object.entries(operations)) {
          for (const parameter of (op.parameters ?? []).filter((p) => p.in === 'path')) {
            const constrained = ['pattern', 'format', 'enum', 'maxLength', 'anyOf'].some((k) => k in parameter.schema);
            expect({ at: `${fn.name} ${method} ${path} ${parameter.name}`, constrained }).toMatchObject({
              constrained: true,
            });
          }
          if (op.security?.length !== 0) expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['401']));
          if (op.requestBody) expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['400', '413', '415']));
        }
      }
    }
  });

  it('checks the key before the body: a malformed body without a valid key is a 401, not a 400', async () => {
    let checked = 0;
    for (const fn of stack.functions) {
      const doc = (await (await fetch(`${fn.base}/openapi.json`)).json()) as Document;
      for (const [path, operations] of Object.entries(doc.paths)) {
        for (const [method, op] of Object.entries(operations)) {
          if (!op.requestBody || op.security?.length === 0) continue;
          for (const authorization of [undefined, 'Bearer kiot_0123456789abcdef_not-the-secret']) {
            const answer = await fetch(`${fn.base}${samplePath(path)}`, {
              method: method.toUpperCase(),
              headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
              body: '{"not json',
            });
            expect({ at: `${fn.name} ${method} ${path}`, status: answer.status }).toEqual({
              at: `${fn.name} ${method} ${path}`,
              status: 401,
            });
            checked += 1;
          }
          // With the key, the malformed body is what is wrong; a required body left out is refused too. (A device's
          // own routes take the device's credential, which no test device has here.)
          if (op.security?.some((s) => 'deviceBasic' in (s as object))) continue;
          const malformed = await fetch(`${fn.base}${samplePath(path)}`, {
            method: method.toUpperCase(),
            headers: { 'content-type': 'application/json', authorization: `Bearer ${stack.adminKey}` },
            body: '{"not json',
          });
          expect({ at: `${fn.name} ${method} ${path}`, status: malformed.status }).toMatchObject({ status: 400 });
          if (op.requestBody.required) {
            const empty = await fetch(`${fn.base}${samplePath(path)}`, {
              method: method.toUpperCase(),
              headers: { authorization: `Bearer ${stack.adminKey}` },
            });
            expect({ at: `${fn.name} ${method} ${path}`, status: empty.status }).toMatchObject({ status: 400 });
          }
        }
      }
    }
    expect(checked).toBeGreaterThan(20);
  });

  it('answers an undocumented method with 405 and Allow listing the documented ones', async () => {
    for (const fn of stack.functions) {
      const doc = (await (await fetch(`${fn.base}/openapi.json`)).json()) as Document;
      for (const [path, operations] of Object.entries(doc.paths)) {
        const answer = await fetch(`${fn.base}${samplePath(path)}`, {
          method: 'OPTIONS',
          headers: { authorization: `Bearer ${stack.adminKey}` },
        });
        expect({ at: `${fn.name} ${path}`, status: answer.status, allow: answer.headers.get('allow') }).toEqual({
          at: `${fn.name} ${path}`,
          status: 405,
          allow: Object.keys(operations)
            .map((m) => m.toUpperCase())
            .sort()
            .join(', '),
        });
      }
    }
  });

  it('with all checks and the stateful phase, against every function', async () => {
    const findings: { name: string; code: number | null; seconds: number; output: string }[] = [];
    for (const fn of stack.functions) {
      const doc = (await (await fetch(`${fn.base}/openapi.json`)).json()) as Document;
      const config = join(dir, `${fn.name}.toml`);
      writeFileSync(config, configFor(doc));
      const started = Date.now();
      const { code, output } = await run(
        st,
        [
          '--no-color',
          '--config-file',
          config,
          'run',
          `${fn.base}/openapi.json`,
          '--checks',
          'all',
          '--phases',
          'examples,coverage,fuzzing,stateful',
          '--max-examples',
          String(MAX_EXAMPLES),
          '--header',
          `Authorization: Bearer ${stack.adminKey}`,
          '--request-timeout',
          '30',
          '--workers',
          '1',
          '--report',
          'junit',
          '--report-dir',
          join(dir, fn.name),
        ],
        dir,
      );
      const seconds = Math.round((Date.now() - started) / 1000);
      mkdirSync(join(ROOT, 'test-artifacts'), { recursive: true });
      writeFileSync(join(ROOT, 'test-artifacts', `schemathesis-${fn.name}.txt`), output);
      findings.push({ name: fn.name, code, seconds, output: code === 0 ? '' : output.slice(-12_000) });
    }
    const summary = findings.map(({ name, code, seconds }) => `${name}: exit ${code} in ${seconds} s`).join('\n');
    writeFileSync(join(ROOT, 'test-artifacts', 'schemathesis.txt'), `${summary}\n`);
    expect(
      findings.filter((f) => f.code !== 0).map(({ name, output }) => `${name}\n${output}`),
      summary,
    ).toEqual([]);
  }, 1_500_000);
});
