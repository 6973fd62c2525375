// Writes a Mosquitto dynamic-security config (the plugin's JSON file) with kiot's fixed clients and roles,
// offline: password hashes are PBKDF2-HMAC-SHA512, 101 iterations, 12-byte salt, exactly what
// `mosquitto_ctrl dynsec init` writes for Mosquitto 2.0 (checked against its output). Devices are not here:
// device-registry creates a client and a role per device at run time over $CONTROL/dynamic-security/v1.
//   node scripts/mosquitto/dynsec-config.mjs <file>   (passwords from env, see dynsec-init.sh)
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';

const file = process.argv[2];
if (!file) throw new Error('usage: dynsec-config.mjs <file>');
const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

function client(username, password, roles, textname) {
  const salt = randomBytes(12);
  return {
    username,
    textname,
    password: pbkdf2Sync(password, salt, 101, 64, 'sha512').toString('base64'),
    salt: salt.toString('base64'),
    iterations: 101,
    roles: roles.map((rolename) => ({ rolename })),
  };
}
const acl = (acltype, topic) => ({ acltype, topic, allow: true });
const deny = (acltype, topic) => ({ acltype, topic, allow: false });
const control = '$CONTROL/dynamic-security/#';

const config = {
  clients: [
    client(env('DYNSEC_ADMIN_USERNAME'), env('DYNSEC_ADMIN_PASSWORD'), ['admin'], 'operator (mosquitto_ctrl)'),
    client(env('REGISTRY_MQTT_USERNAME'), env('REGISTRY_MQTT_PASSWORD'), ['kiot-registry'], 'device-registry'),
    client(env('BRIDGE_MQTT_USERNAME'), env('BRIDGE_MQTT_PASSWORD'), ['kiot-bridge'], 'mqtt-bridge'),
    client(
      env('FLEET_CLAIM_USERNAME'),
      env('FLEET_CLAIM_PASSWORD'),
      ['kiot-fleet-claim'],
      'fleet claim (self-provisioning)',
    ),
  ],
  roles: [
    {
      rolename: 'admin',
      acls: [
        acl('publishClientSend', control),
        acl('publishClientReceive', control),
        acl('subscribePattern', control),
        acl('publishClientReceive', '$SYS/#'),
        acl('subscribePattern', '$SYS/#'),
        acl('publishClientReceive', '#'),
        acl('subscribePattern', '#'),
        acl('unsubscribePattern', '#'),
      ],
    },
    // The registry manages device clients and roles, and nothing else.
    {
      rolename: 'kiot-registry',
      acls: [acl('publishClientSend', control), acl('publishClientReceive', control), acl('subscribePattern', control)],
    },
    {
      // The bridge reads every device and provisioning topic through its share group and publishes replies.
      rolename: 'kiot-bridge',
      acls: ['devices/#', 'provisioning/#'].flatMap((topic) => [
        acl('subscribePattern', `$share/+/${topic}`),
        acl('subscribePattern', topic),
        acl('publishClientReceive', topic),
        acl('publishClientSend', topic),
      ]),
    },
    {
      // Mosquitto 2.0.11 dynsec does not expand %u/%c, so every claim holder may read every response topic.
      // A response therefore carries the device secret only encrypted to the `replyKey` its device sent in the
      // request (functions/device-registry/use-cases/provision-device.ts). That key must stay unreadable to other
      // claim holders: this role may only PUBLISH requests, never subscribe to or receive them (the default
      // denies subscribe; the explicit denies also stop delivery if a wider subscribe were ever granted).
      rolename: 'kiot-fleet-claim',
      acls: [
        acl('publishClientSend', 'provisioning/+/request'),
        deny('subscribePattern', 'provisioning/+/request'),
        deny('publishClientReceive', 'provisioning/+/request'),
        acl('subscribePattern', 'provisioning/+/response'),
        acl('publishClientReceive', 'provisioning/+/response'),
      ],
    },
  ],
  groups: [],
  defaultACLAccess: { publishClientSend: false, publishClientReceive: true, subscribe: false, unsubscribe: true },
};
writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
