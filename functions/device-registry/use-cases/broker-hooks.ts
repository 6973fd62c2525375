import { verifySecret } from '../../../shared/secrets.js';
import { type CachedStatus, passwordDigest } from '../auth-cache.js';
import {
  accessDecision,
  connectDecision,
  deviceAclRules,
  type HookAction,
  isDeviceUsername,
} from '../broker-policy.js';
import type { RegistryDeps } from '../deps.js';

/**
 * EMQX HTTP authentication and authorization hooks (docs.emqx.com: "Use HTTP Service" for authn and authz):
 * authn answers `{"result":"allow"|"deny"|"ignore","is_superuser":false}`, authz `{"result":"allow"|"deny"|"ignore"}`,
 * always with 200. Asked `with_acl: true` (the kiot-auth Mosquitto plugin asks), an `allow` carries the device's ACL
 * (`acl`, EMQX ≥ 5.8's format), so the broker checks publishes and subscriptions without calling /broker/authz until
 * it re-checks. Not by default: EMQX holds an authn ACL for the whole session and never asks again, so a disable
 * would wait for the device's next connect instead of EMQX's authz cache TTL. `ignore` hands a username that is
 * not a device (the bridge, the registry's admin, the fleet claim client) to the next authenticator in the chain. Answers come from the registry and are
 * cached in Redis for AUTH_CACHE_TTL_SECONDS; rotate, disable and delete drop the device's cache entry.
 */
export async function authenticate(
  input: { clientid: string; username: string; password: string; with_acl?: boolean },
  deps: RegistryDeps,
) {
  const { clientid, username, password } = input;
  if (!isDeviceUsername(username)) return { result: 'ignore' as const, is_superuser: false };
  const digest = passwordDigest(clientid, password);
  const cached = await deps.authCache.lookup(username, digest);
  let status = cached.status;
  let secretMatches = cached.verdict;
  if (status === undefined || (status !== 'missing' && secretMatches === undefined)) {
    const device = await deps.devices.find(username);
    status = statusOf(device);
    secretMatches = device && status !== 'missing' ? await verifySecret(password, device.credential.hash) : false;
    await deps.authCache.store(username, status, status === 'missing' ? undefined : { digest, allowed: secretMatches });
  }
  const result = connectDecision({
    status,
    clientIdMatches: clientid === username,
    secretMatches: secretMatches === true,
  });
  return result === 'allow' && input.with_acl
    ? { result, is_superuser: false, acl: deviceAclRules(username) }
    : { result, is_superuser: false };
}

export async function authorize(
  input: { clientid: string; username: string; topic: string; action: HookAction },
  deps: RegistryDeps,
) {
  const { clientid, username, topic, action } = input;
  if (!isDeviceUsername(username)) return { result: 'ignore' as const };
  let status = (await deps.authCache.lookup(username)).status;
  if (status === undefined) {
    status = statusOf(await deps.devices.find(username));
    await deps.authCache.store(username, status);
  }
  return { result: accessDecision({ status, id: username, clientid, topic, action }) };
}

function statusOf(device: { status: 'active' | 'disabled'; brokerSynced?: boolean } | undefined): CachedStatus {
  // A registration not yet at the broker has not handed out its secret: treat it as absent.
  if (!device || device.brokerSynced === false) return 'missing';
  return device.status;
}
