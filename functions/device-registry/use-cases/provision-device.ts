import { createHash, randomUUID } from 'node:crypto';
import type { z } from 'zod';
import { ConflictError } from '../../../shared/errors.js';
import { verifySecret } from '../../../shared/secrets.js';
import type { Ctx, RegistryDeps } from '../deps.js';
import type { RequestDocument, TokenDocument } from '../provisioning-repository.js';
import { openReply, replyKeyDigest, type SealedCredential, sealCredential, sealReply } from '../reply-crypto.js';
import type { ProvisioningRequest } from '../schema.js';
import { parseClaimToken } from './provisioning-tokens.js';
import { registerDevice } from './register-device.js';
import { rotateCredentials } from './rotate-credentials.js';

export const MQTT_PUBLISH = 'io.kiot.mqtt.publish';

export type RefusalReason = 'invalid' | 'expired' | 'used_up' | 'id_taken' | 'request_id_used' | 'invalid_request';

/**
 * What the registry publishes on `provisioning/{requestId}/response` (JSON, QoS 1, not retained).
 *
 * Accepted:
 * ```json
 * { "status": "accepted", "requestId": "…", "deviceId": "…",
 *   "mqtt": { "username": "<deviceId>", "clientId": "<deviceId>", "topicPrefix": "devices/<deviceId>/" },
 *   "credential": { "alg": "A256GCM", "iv": "…", "ciphertext": "…", "tag": "…" } }
 * ```
 * Every fleet-claim holder may read every response topic (Mosquitto 2.0.11 dynsec cannot pin a role to
 * `%c`), so the device secret is only inside `credential`, encrypted with AES-256-GCM under the `replyKey`
 * the device sent in its request, with the request id as associated data. The device decrypts it as
 * reply-crypto.ts (`SealedCredential`, `openCredential`) describes and gets `{"secret":"…"}`: its MQTT
 * password, with username and client id = `deviceId`. The rest is not secret (device ids appear in topics).
 *
 * Refused: `{ "status": "refused", "requestId": "…", "error": { "code": RefusalReason, "message": "…" } }`.
 */
export type ProvisioningReply =
  | {
      status: 'accepted';
      requestId: string;
      deviceId: string;
      mqtt: { username: string; clientId: string; topicPrefix: string };
      credential: SealedCredential;
    }
  | { status: 'refused'; requestId: string; error: { code: RefusalReason; message: string } };

/**
 * Self-provisioning with a fleet claim token (`io.kiot.provisioning.requested`, subject = request id):
 * replay a request id already answered → check the token → remember the request id (with a digest of its
 * reply key) → take one use of the token (atomic) → register the device with the token's type and tags →
 * encrypt the secret to the reply key → store the reply sealed → publish it on
 * `provisioning/{requestId}/response` through the bridge (`io.kiot.mqtt.publish`).
 *
 * The same request id twice yields one device and the same answer: the reply as published (credential
 * encrypted to the device's key) is stored sealed again with PROVISIONING_REPLY_KEY, so a redelivery
 * publishes exactly the same bytes and no plaintext secret is ever stored. A request id is bound to its reply
 * key: since every claim holder sees the request ids on the response topics, a "replay" under another key
 * is refused (`request_id_used`) instead of re-encrypting someone else's secret to it. Only a crash between
 * registering and storing the reply leaves no sealed reply; then the replay (same key) rotates the secret of
 * that same device and answers with the new one.
 */
export async function provisionDevice(
  requestId: string,
  request: ProvisioningRequest,
  deps: RegistryDeps,
  ctx: Ctx,
): Promise<ProvisioningReply> {
  const reply = (await replay(requestId, request, deps, ctx)) ?? (await provisionAnew(requestId, request, deps, ctx));
  await publishReply(requestId, reply, deps);
  return reply;
}

async function replay(
  requestId: string,
  request: ProvisioningRequest,
  deps: RegistryDeps,
  ctx: Ctx,
): Promise<ProvisioningReply | undefined> {
  const known = await deps.provisioning.findRequest(requestId, deps.now());
  if (!known) return undefined;
  if (known.replyKeyDigest !== keyDigest(request)) {
    return refuse(
      requestId,
      'request_id_used',
      'this request id is taken by a request with another replyKey: use a fresh request id with every fresh replyKey',
    );
  }
  if (known.state === 'answered' && known.reply) {
    const opened = openReply(deps.replyKey, requestId, known.reply);
    const stored = opened === undefined ? undefined : (JSON.parse(opened) as ProvisioningReply);
    // A reply stored before credentials were encrypted (or under another PROVISIONING_REPLY_KEY) is not replayed.
    if (stored && (stored.status === 'refused' || stored.credential !== undefined)) return stored;
    return refuse(requestId, 'request_id_used', 'this request id was answered before');
  }
  return resume(known, request, deps, ctx);
}

/** A request whose earlier attempt stopped after taking a token use (e.g. the broker was down). */
async function resume(
  known: RequestDocument,
  request: ProvisioningRequest,
  deps: RegistryDeps,
  ctx: Ctx,
): Promise<ProvisioningReply> {
  const existing = await deps.devices.find(known.deviceId);
  if (existing?.brokerSynced !== false && existing?.provisionedBy?.requestId === known._id) {
    const rotated = await rotateCredentials(known.deviceId, deps, ctx);
    return settle(known._id, accept(known._id, rotated.device.id, rotated.secret, request), deps);
  }
  const token = await deps.provisioning.findToken(known.tokenId);
  return register(known, token, request, deps, ctx);
}

async function provisionAnew(
  requestId: string,
  request: ProvisioningRequest,
  deps: RegistryDeps,
  ctx: Ctx,
): Promise<ProvisioningReply> {
  const checked = await checkToken(request.claimToken, deps);
  if ('code' in checked) return refuse(requestId, checked.code, checked.message);
  const now = deps.now();
  const known: RequestDocument = {
    _id: requestId,
    tokenId: checked._id,
    deviceId: request.id ?? randomUUID(),
    replyKeyDigest: keyDigest(request),
    state: 'pending',
    createdAt: now,
    expiresAt: new Date(now.getTime() + deps.replaySeconds * 1_000),
  };
  // A concurrent delivery of the same request holds it: 409 is retried, and the retry replays its answer.
  if (!(await deps.provisioning.insertRequest(known)))
    throw new ConflictError(`provisioning request ${requestId} is in progress`);
  if (!(await deps.provisioning.consumeToken(checked._id, now))) {
    await deps.provisioning.removeRequest(requestId);
    const again = await checkToken(request.claimToken, deps);
    return 'code' in again
      ? refuse(requestId, again.code, again.message)
      : refuse(requestId, 'used_up', 'the claim token has no uses left');
  }
  return register(known, checked, request, deps, ctx);
}

async function register(
  known: RequestDocument,
  token: TokenDocument | undefined,
  request: ProvisioningRequest,
  deps: RegistryDeps,
  ctx: Ctx,
): Promise<ProvisioningReply> {
  try {
    const registered = await registerDevice(
      {
        id: known.deviceId,
        name: request.name,
        type: token?.type,
        tags: token?.tags ?? [],
        metadata: request.metadata ?? {},
        status: 'active',
      },
      deps,
      ctx,
      { provisionedBy: { tokenId: known.tokenId, requestId: known._id } },
    );
    return settle(known._id, accept(known._id, registered.device.id, registered.secret, request), deps);
  } catch (error) {
    if (!(error instanceof ConflictError)) throw error; // 503 and the like: the request stays pending, the retry resumes
    await deps.provisioning.removeRequest(known._id);
    await deps.provisioning.releaseToken(known.tokenId);
    return refuse(known._id, 'id_taken', `a device ${known.deviceId} exists already`);
  }
}

type TokenCheck = TokenDocument | { code: RefusalReason; message: string };

async function checkToken(claimToken: string, deps: RegistryDeps): Promise<TokenCheck> {
  const parsed = parseClaimToken(claimToken);
  const token = parsed && (await deps.provisioning.findToken(parsed.tokenId));
  if (!parsed || !token || !(await verifySecret(parsed.secret, token.hash)))
    return { code: 'invalid', message: 'the claim token is not valid' };
  if (token.expiresAt <= deps.now())
    return { code: 'expired', message: `the claim token expired at ${token.expiresAt.toISOString()}` };
  if (token.remaining <= 0) return { code: 'used_up', message: 'the claim token has no uses left' };
  return token;
}

async function settle(requestId: string, reply: ProvisioningReply, deps: RegistryDeps): Promise<ProvisioningReply> {
  await deps.provisioning.answerRequest(requestId, sealReply(deps.replyKey, requestId, JSON.stringify(reply)));
  return reply;
}

function accept(requestId: string, deviceId: string, secret: string, request: ProvisioningRequest): ProvisioningReply {
  return {
    status: 'accepted',
    requestId,
    deviceId,
    mqtt: { username: deviceId, clientId: deviceId, topicPrefix: `devices/${deviceId}/` },
    credential: sealCredential(Buffer.from(request.replyKey, 'base64url'), requestId, { secret }),
  };
}

const keyDigest = (request: ProvisioningRequest) => replyKeyDigest(Buffer.from(request.replyKey, 'base64url'));

function refuse(requestId: string, code: RefusalReason, message: string): ProvisioningReply {
  return { status: 'refused', requestId, error: { code, message } };
}

/** A request the schema refuses (no claim token, a bad id): the device is told, nothing is stored. */
export async function refuseInvalidRequest(requestId: string, error: z.ZodError, deps: RegistryDeps): Promise<void> {
  const reply = refuse(
    requestId,
    'invalid_request',
    error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; '),
  );
  await publishReply(requestId, reply, deps);
}

/** The answer goes out through the bridge; if K_SINK is down the emitter's 503 has the event retried (and replayed). */
async function publishReply(requestId: string, reply: ProvisioningReply, deps: RegistryDeps): Promise<void> {
  const topic = `provisioning/${requestId}/response`;
  // The same answer gets the same event id (a duplicate to drop); a different one (a rotated secret) a new id.
  const digest = createHash('sha256').update(JSON.stringify(reply)).digest('base64url').slice(0, 16);
  await deps.emitter.emit({
    type: MQTT_PUBLISH,
    subject: requestId,
    id: `provisioning:${requestId}:${digest}`,
    data: { topic, payload: reply, qos: 1, retain: false },
  });
}
