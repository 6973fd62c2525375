// The deployables' bundles get some packages through lazy shims (scripts/build-shims/, scripts/build.mjs): each must
// offer the package's exports and work when its first use is any of them (a cycle in the SDK's modules once made
// `HTTP` unusable when it was loaded first).
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);
const exportsOf = (module: object) =>
  Object.keys(module)
    .filter((name) => name !== '__esModule')
    .sort();

describe('build shims', () => {
  it('cloudevents: the package index exports, each working as the first one used', () => {
    const real = require('cloudevents') as object;
    const shim = require('../../scripts/build-shims/cloudevents.cjs') as typeof import('cloudevents');
    expect(exportsOf(shim)).toEqual(exportsOf(real));
    const event = shim.HTTP.toEvent({
      headers: {
        'content-type': 'application/json',
        'ce-id': 'x',
        'ce-type': 't',
        'ce-source': 's',
        'ce-specversion': '1.0',
      },
      body: '[1]',
    });
    expect(event).toMatchObject({ id: 'x', type: 't' });
    expect(shim.Mode.BINARY).toBe('binary');
  });

  it('prom-client: the package index exports', () => {
    const real = require('prom-client') as object;
    const shim = require('../../scripts/build-shims/prom-client.cjs') as object;
    expect(exportsOf(shim)).toEqual(exportsOf(real));
  });

  it('saslprep: the package exports, the function preparing as the package does (RFC 4013) on its first call', () => {
    const real = require('@mongodb-js/saslprep') as object;
    const shim = require('../../scripts/build-shims/saslprep.cjs') as typeof import('@mongodb-js/saslprep');
    expect(exportsOf(shim)).toEqual(exportsOf(real));
    // RFC 4013, section 3: a soft hyphen maps to nothing, a non-ASCII space to a space; a control character is refused.
    expect(shim.saslprep('I\u00ADX')).toBe('IX');
    expect(shim('a\u00A0b')).toBe('a b');
    expect(() => shim.default('\u0007')).toThrow();
  });

  it("mqtt-socks: what mqtt.js's stream builders import from ./socks", () => {
    const real = require('mqtt/lib/connect/socks') as object;
    const shim = require('../../scripts/build-shims/mqtt-socks.cjs') as { default: unknown };
    expect(exportsOf(shim)).toEqual(exportsOf(real));
    expect(typeof shim.default).toBe('function');
  });
});
