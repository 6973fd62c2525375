import { deviceIdSchema } from '../../shared/devices.js';

/**
 * The broker ACL as a pure function, for brokers that ask over HTTP (EMQX): a device may publish and
 * subscribe only under `devices/{id}/…`, connected with client id = username = its id (ARCHITECTURE "MQTT
 * topics"). Mosquitto gets the same rule as dynsec roles (device-broker.ts).
 */
export type HookAction = 'publish' | 'subscribe' | 'all';

export function isDeviceUsername(username: string): boolean {
  return deviceIdSchema.safeParse(username).success;
}

/**
 * Whether `topic` (a topic name for publish, a filter for subscribe) stays within the device's prefix. The
 * id level is compared literally, so `devices/+/…` or `#` never match; a publish topic may hold no
 * wildcard at all (MQTT 3.1.1 §4.7.1), and shared subscriptions (`$share/…`) are not for devices.
 */
export function topicAllowed(id: string, topic: string, action: HookAction): boolean {
  const prefix = `devices/${id}/`;
  if (!topic.startsWith(prefix) || topic.length === prefix.length) return false;
  const rest = topic.slice(prefix.length).split('/');
  if (action === 'subscribe') {
    // '#' only as the last level, '+' only as a whole level (§4.7.1.2, §4.7.1.3).
    return rest.every((level, i) =>
      level.includes('#') ? level === '#' && i === rest.length - 1 : !level.includes('+') || level === '+',
    );
  }
  return rest.every((level) => !level.includes('#') && !level.includes('+'));
}

/**
 * The same rule in the `acl` of an HTTP authn answer (EMQX ≥ 5.8, docs.emqx.com "Access Control List"): the broker
 * enforces it without asking /broker/authz per publish. MQTT's `#` also matches the parent level `devices/{id}`
 * (§4.7.1.2), one topic `topicAllowed` refuses; nothing is published there.
 */
export function deviceAclRules(id: string) {
  return [{ permission: 'allow' as const, action: 'all' as const, topic: `devices/${id}/#` }];
}

export type Decision = 'allow' | 'deny' | 'ignore';

/** Connect: only an active device, with its own client id, and the right secret. */
export function connectDecision(input: {
  status: 'active' | 'disabled' | 'missing';
  clientIdMatches: boolean;
  secretMatches: boolean;
}): Decision {
  if (input.status === 'missing') return 'ignore';
  return input.status === 'active' && input.clientIdMatches && input.secretMatches ? 'allow' : 'deny';
}

export function accessDecision(input: {
  status: 'active' | 'disabled' | 'missing';
  id: string;
  clientid: string;
  topic: string;
  action: HookAction;
}): Decision {
  if (input.status === 'missing') return 'ignore';
  if (input.status !== 'active' || input.clientid !== input.id) return 'deny';
  return topicAllowed(input.id, input.topic, input.action) ? 'allow' : 'deny';
}
