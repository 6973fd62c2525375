import { describe, expect, it } from 'vitest';
import { mapInboundMessage } from '../../../bridge/device-events.js';
import { parseInboundTopic, subscriptionFilters } from '../../../bridge/topics.js';
import { JOB_REQUEST_TYPES, notifyNextTopic, requestTopic } from '../../../functions/jobs/device-topics.js';

// The jobs topics as the bridge reads them: the four requests become their CloudEvent types, with the job id
// from the topic; the answers and notifications the bridge publishes are never read back.
const options = { source: '/kiot/test-broker', maxPayloadBytes: 1024 };
const message = (topic: string, payload: string) => ({
  topic,
  payload: Buffer.from(payload),
  qos: 1,
  packetId: 7,
  sessionId: 'bridge-1',
  receivedAt: new Date('2030-01-01T00:00:00Z'),
});

describe('job topics', () => {
  it.each([
    ['get', undefined],
    ['start-next', undefined],
    ['describe', 'fw-1'],
    ['update', 'fw-1'],
  ] as const)('maps a %s request to its event type, with the job id', (request, jobId) => {
    const mapped = mapInboundMessage(message(requestTopic('d1', request, jobId), '{"clientToken":"c"}'), options);
    expect(mapped.ok).toBe(true);
    if (!mapped.ok) return;
    expect(mapped.event.type).toBe(JOB_REQUEST_TYPES[request]);
    expect(mapped.event.subject).toBe('d1');
    expect(mapped.event.data).toEqual({ clientToken: 'c', ...(jobId ? { jobId } : {}) });
    if (jobId) expect((mapped.event as unknown as { jobid: string }).jobid).toBe(jobId);
  });

  it('reads neither answers nor notifications as requests', () => {
    for (const topic of [
      'devices/d1/jobs/get/accepted',
      'devices/d1/jobs/fw-1/update/rejected',
      notifyNextTopic('d1'),
      'devices/d1/jobs/notify',
      'devices/d1/jobs/fw-1/other',
    ]) {
      expect(parseInboundTopic(topic).ok).toBe(false);
    }
    expect(parseInboundTopic('devices/d1/jobs/bad$id/update').ok).toBe(false);
    expect(subscriptionFilters('g')).toEqual(
      expect.arrayContaining(['$share/g/devices/+/jobs/get', '$share/g/devices/+/jobs/+/update']),
    );
  });
});
