import { describe, expect, it } from 'vitest';
import { loadBridgeConfig, publisherClientId, sessionClientId } from '../../../bridge/config.js';
import { mqttPublishDataSchema, payloadBytesOf } from '../../../bridge/publish-route.js';
import { ConfigError } from '../../../shared/config.js';

const env = {
  MQTT_URL: 'mqtt://user:secret@broker:1883/x?y=1',
  K_SINK: 'http://broker-ingress/',
  DEAD_LETTER_SINK: 'http://dls/',
};

describe('bridge config', () => {
  it('derives stable ids and a source without credentials', () => {
    const config = loadBridgeConfig({ ...env, HOSTNAME: 'kiot-bridge-0' });
    expect(config).toMatchObject({
      BRIDGE_CLIENT_ID: 'kiot-bridge-kiot-bridge-0',
      BRIDGE_SOURCE: 'mqtt://broker:1883',
      BRIDGE_SHARE_GROUP: 'kiot',
      MQTT_PROTOCOL_VERSION: 5,
      MAX_PAYLOAD_BYTES: 262_144,
    });
    expect(sessionClientId(config.BRIDGE_CLIENT_ID, 2)).toBe('kiot-bridge-kiot-bridge-0-s2');
    expect(publisherClientId('b')).toBe('b-pub');
    expect(loadBridgeConfig({ ...env, MQTT_PROTOCOL_VERSION: '4' }).MQTT_PROTOCOL_VERSION).toBe(4);
  });

  it('batches telemetry by default with a count the default window can fill', () => {
    const config = loadBridgeConfig(env);
    expect(config).toMatchObject({ BATCH_MAX_COUNT: 250, BATCH_MAX_BYTES: 524_288, BATCH_LINGER_MS: 10 });
    // A batch closes by count only if that many messages can be unacknowledged at once (docs/telemetry-batch.md).
    expect(config.BATCH_MAX_COUNT).toBeLessThanOrEqual(config.BRIDGE_SESSIONS * config.MAX_IN_FLIGHT);
  });

  it('fails at start on a bad environment', () => {
    expect(() => loadBridgeConfig({ ...env, DEAD_LETTER_SINK: undefined })).toThrow(ConfigError);
    expect(() => loadBridgeConfig({ ...env, BRIDGE_SESSIONS: '0' })).toThrow(ConfigError);
    expect(() => loadBridgeConfig({ ...env, BRIDGE_CLIENT_ID: 'has space' })).toThrow(ConfigError);
  });
});

describe('io.kiot.mqtt.publish data', () => {
  it('defaults QoS 1 and encodes by payload type', () => {
    const parsed = mqttPublishDataSchema.parse({ topic: 'devices/d/x', payload: { a: 1 } });
    expect(parsed).toMatchObject({ qos: 1, retain: false });
    expect(payloadBytesOf(parsed).toString()).toBe('{"a":1}');
    expect(payloadBytesOf(mqttPublishDataSchema.parse({ topic: 't', payload: 'AQI=', encoding: 'base64' }))).toEqual(
      Buffer.from([1, 2]),
    );
    expect(
      payloadBytesOf(mqttPublishDataSchema.parse({ topic: 't', payload: '"q"', encoding: 'json' })).toString(),
    ).toBe('"\\"q\\""');
  });
});
