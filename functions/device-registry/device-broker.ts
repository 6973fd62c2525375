import { AppError } from '../../shared/errors.js';
import type { DynsecClient, DynsecCommand, DynsecResponse } from './dynsec.js';

/**
 * What the registry needs from the broker: each device a client of its own (username = device id, client
 * id pinned to the device id, its secret) that may publish and subscribe only under `devices/{id}/…`.
 *
 * Mosquitto 2.0.11's dynamic-security plugin does not expand `%u`/`%c` in role ACLs (measured: a
 * `devices/%u/#` role allowed neither publish nor subscribe), so every device gets a role of its own with
 * literal ACLs. Every operation is idempotent, so a retried request (after a 503) converges:
 * "already exists" on create repairs the existing client, "not found" on delete is success.
 */
export interface DeviceBroker {
  /**
   * Whether the broker keeps credentials of its own (dynsec) that a registration must write before the device
   * is announced; false when the broker asks the registry (hooks): the stored hash is then the credential.
   */
  readonly storesCredentials: boolean;
  /** Creates, or repairs, the clients and roles of these devices (also how a secret is rotated). */
  provision(devices: readonly BrokerDevice[]): Promise<void>;
  /** Disabling kicks a connected client at once (dynsec disableClient). */
  setEnabled(id: string, enabled: boolean): Promise<void>;
  /** Deletes the client (kicking it) and its role. */
  remove(id: string): Promise<void>;
  ping(): Promise<void>;
}

export interface BrokerDevice {
  id: string;
  secret: string;
  enabled: boolean;
}

export const deviceRoleName = (id: string) => `kiot-device-${id}`;

/** The ACLs of a device's role (dynsec acltypes; default access denies publish and subscribe). */
export function deviceAcls(id: string) {
  const topic = `devices/${id}/#`;
  return [
    { acltype: 'publishClientSend', topic, allow: true },
    { acltype: 'publishClientReceive', topic, allow: true },
    { acltype: 'subscribePattern', topic, allow: true },
  ];
}

/** Devices per control message: 2-3 commands each, so one message stays well within the reply budget. */
const CHUNK = 50;

const alreadyExists = (response: DynsecResponse | undefined) => /already/i.test(response?.error ?? '');
const notFound = (response: DynsecResponse | undefined) => /not found/i.test(response?.error ?? '');

function check(responses: DynsecResponse[], tolerate: (response: DynsecResponse) => boolean = () => false): void {
  const failed = responses.find((response) => response.error && !tolerate(response));
  // A refusal the broker gives for a well-formed command is a bug or a misconfiguration, not a fault to wait out.
  if (failed) throw new AppError(500, 'broker_refused', `the broker refused ${failed.command}: ${failed.error}`);
}

export function createDeviceBroker(dynsec: DynsecClient): DeviceBroker {
  const enableCommand = (id: string, enabled: boolean): DynsecCommand => ({
    command: enabled ? 'enableClient' : 'disableClient',
    username: id,
  });

  async function provisionChunk(devices: readonly BrokerDevice[]): Promise<void> {
    const commands: DynsecCommand[] = [];
    for (const device of devices) {
      commands.push({ command: 'createRole', rolename: deviceRoleName(device.id), acls: deviceAcls(device.id) });
      commands.push({
        command: 'createClient',
        username: device.id,
        password: device.secret,
        clientid: device.id,
        roles: [{ rolename: deviceRoleName(device.id) }],
      });
      if (!device.enabled) commands.push(enableCommand(device.id, false));
    }
    const responses = await dynsec.send(commands);
    check(responses, alreadyExists);
    // Clients left by an earlier attempt that failed half-way: bring them to the wanted state.
    const repairs: DynsecCommand[] = [];
    for (const device of devices) {
      const index = commands.findIndex((c) => c.command === 'createClient' && c.username === device.id);
      if (!alreadyExists(responses[index])) continue;
      repairs.push(
        { command: 'setClientPassword', username: device.id, password: device.secret },
        { command: 'setClientId', username: device.id, clientid: device.id },
        // 2.0.11 answers "Internal error" to adding a role the client already has: drop it first (tolerated).
        { command: 'removeClientRole', username: device.id, rolename: deviceRoleName(device.id) },
        { command: 'addClientRole', username: device.id, rolename: deviceRoleName(device.id) },
        enableCommand(device.id, device.enabled),
      );
    }
    check(await dynsec.send(repairs), (response) => response.command === 'removeClientRole' || alreadyExists(response));
  }

  return {
    storesCredentials: true,
    async provision(devices) {
      for (let i = 0; i < devices.length; i += CHUNK) await provisionChunk(devices.slice(i, i + CHUNK));
    },
    async setEnabled(id, enabled) {
      check(await dynsec.send([enableCommand(id, enabled)]), (response) => !enabled && notFound(response));
    },
    async remove(id) {
      check(
        await dynsec.send([
          { command: 'deleteClient', username: id },
          { command: 'deleteRole', rolename: deviceRoleName(id) },
        ]),
        notFound,
      );
    },
    ping: () => dynsec.ping(),
  };
}

/**
 * For brokers that ask the registry (EMQX with the HTTP auth hooks, BROKER_ACCESS=hooks): nothing to write.
 * Revocation then takes effect at the next connect or ACL check, within AUTH_CACHE_TTL_SECONDS; kicking
 * live sessions needs the broker's own admin API (not done here).
 */
export function createHookOnlyBroker(): DeviceBroker {
  return {
    storesCredentials: false,
    provision: async () => undefined,
    setEnabled: async () => undefined,
    remove: async () => undefined,
    ping: async () => undefined,
  };
}
