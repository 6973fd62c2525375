import type { DeadLetterDocument } from './dead-letter-repository.js';

/** A dead letter as the API shows it: the event with its data decoded, the failure, the replay history. */
export function deadLetterView(doc: DeadLetterDocument) {
  const { data, dataEncoding, extensions, ...attributes } = doc.event;
  let shown: unknown = data;
  if (data !== undefined && dataEncoding === 'json') {
    try {
      shown = JSON.parse(data) as unknown;
    } catch {
      shown = data;
    }
  }
  return {
    id: doc._id,
    status: doc.status,
    event: {
      ...attributes,
      ...extensions,
      ...(dataEncoding === 'base64' ? { data_base64: data } : data !== undefined ? { data: shown } : {}),
    },
    error: doc.error,
    deadLetterCount: doc.deadLetterCount,
    firstDeadLetteredAt: doc.firstDeadLetteredAt.toISOString(),
    lastDeadLetteredAt: doc.lastDeadLetteredAt.toISOString(),
    replayCount: doc.replayCount,
    ...(doc.replayedAt ? { replayedAt: doc.replayedAt.toISOString(), replayedTo: doc.replayedTo } : {}),
    ...(doc.lastReplay ? { lastReplay: { ...doc.lastReplay, at: doc.lastReplay.at.toISOString() } } : {}),
  };
}
