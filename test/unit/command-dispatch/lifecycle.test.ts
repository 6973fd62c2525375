import { describe, expect, it } from 'vitest';
import {
  ACK_TO_STATUS,
  ALLOWED_FROM,
  COMMAND_STATUSES,
  type CommandStatus,
  canTransition,
  commandTopic,
  isTerminal,
  lifecycleEventType,
} from '../../../functions/command-dispatch/lifecycle.js';

const rank: Record<CommandStatus, number> = {
  QUEUED: 0,
  SENT: 1,
  DELIVERED: 2,
  SUCCEEDED: 3,
  FAILED: 3,
  REJECTED: 3,
  EXPIRED: 3,
  TIMED_OUT: 3,
  CANCELLED: 3,
};

describe('command lifecycle', () => {
  it('only moves forward (SENT → SENT is the bounded re-send), and never leaves a final status', () => {
    for (const from of COMMAND_STATUSES) {
      for (const to of COMMAND_STATUSES) {
        if (!canTransition(from, to)) continue;
        expect(isTerminal(from), `${from} → ${to}`).toBe(false);
        expect(rank[to] > rank[from] || (from === 'SENT' && to === 'SENT'), `${from} → ${to}`).toBe(true);
      }
    }
  });

  it.each([
    ['QUEUED', 'SENT', true],
    ['QUEUED', 'EXPIRED', true],
    ['QUEUED', 'CANCELLED', true],
    ['SENT', 'CANCELLED', false],
    ['SENT', 'EXPIRED', false],
    ['QUEUED', 'TIMED_OUT', false],
    ['DELIVERED', 'TIMED_OUT', true],
    ['DELIVERED', 'SENT', false],
    ['SUCCEEDED', 'FAILED', false],
    ['TIMED_OUT', 'SUCCEEDED', false],
    // An ack may overtake the SENT write on the fast path.
    ['QUEUED', 'SUCCEEDED', true],
    ['QUEUED', 'DELIVERED', true],
  ] as const)('%s → %s: %s', (from, to, allowed) => {
    expect(canTransition(from, to)).toBe(allowed);
  });

  it('nothing leads back to QUEUED', () => {
    expect(ALLOWED_FROM.QUEUED).toEqual([]);
  });

  it('maps acks, event types and topics', () => {
    expect(ACK_TO_STATUS).toEqual({
      accepted: 'DELIVERED',
      succeeded: 'SUCCEEDED',
      failed: 'FAILED',
      rejected: 'REJECTED',
    });
    expect(lifecycleEventType('TIMED_OUT')).toBe('io.kiot.command.timed_out');
    expect(commandTopic('d-1', 'c-1')).toBe('devices/d-1/commands/c-1');
  });
});
