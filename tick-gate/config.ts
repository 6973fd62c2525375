import { z } from 'zod';
import { baseConfigSchema, type Env, loadConfig, mongoFields, sinkFields } from '../shared/config.js';
import { eventAuthFields } from '../shared/event-auth.js';

/** The tick gate's environment: MongoDB to look in, K_SINK (the Broker, from its SinkBinding) to pass ticks to. */
export const tickGateConfigSchema = baseConfigSchema.extend({
  ...mongoFields,
  ...sinkFields,
  /** Its token for the Broker (EVENT_TOKEN_FILE) where sender identity is on; see docs/deploy.md. */
  ...eventAuthFields,
  /**
   * The collections a tick's pending-work queries may read (comma-separated); a tick naming another is refused.
   * Its MongoDB user needs `find` on exactly these.
   */
  TICK_GATE_COLLECTIONS: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*$/)
    .transform((list) => new Set(list.split(','))),
});
export type TickGateConfig = z.infer<typeof tickGateConfigSchema>;

export const loadTickGateConfig = (env: Env = process.env): TickGateConfig => loadConfig(tickGateConfigSchema, env);
