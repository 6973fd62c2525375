import type { z } from 'zod';
import type { CommandDocument } from './command-repository.js';
import type { commandViewSchema } from './schema.js';

/** A command as the API answers it and as `io.kiot.command.<state>` events carry it (schema.ts). */
export type CommandView = z.infer<typeof commandViewSchema>;

export function toView(doc: CommandDocument): CommandView {
  const view: CommandView = {
    id: doc._id,
    deviceId: doc.deviceId,
    name: doc.name,
    params: doc.params ?? null,
    status: doc.status,
    createdAt: doc.createdAt.toISOString(),
    updatedAt: doc.updatedAt.toISOString(),
    expiresAt: doc.expiresAt.toISOString(),
    timeoutSeconds: doc.timeoutSeconds,
    attempts: doc.attempts,
    // Entries are appended as writes land; an ack that overtook the SENT write lands first, so order by time.
    history: [...doc.history]
      .sort((a, b) => a.at.getTime() - b.at.getTime())
      .map((entry) => ({
        status: entry.status,
        at: entry.at.toISOString(),
        ...(entry.attempt ? { attempt: entry.attempt } : {}),
      })),
  };
  // A QUEUED command's deadline is provisional (see create-command.ts): the clock starts with the send.
  if (doc.deadlineAt && doc.status !== 'QUEUED') view.deadlineAt = doc.deadlineAt.toISOString();
  if (doc.result !== undefined && doc.result !== null) view.result = doc.result;
  if (doc.error !== undefined && doc.error !== null) view.error = doc.error;
  return view;
}
