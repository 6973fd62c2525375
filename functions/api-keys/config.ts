import type { z } from 'zod';
import { apiKeyFields } from '../../shared/api-keys.js';
import { baseConfigSchema, mongoFields } from '../../shared/config.js';

/** The environment of api-keys: MongoDB (the `api_keys` collection) and the bootstrap keys of the Secret. */
export const apiKeysConfigSchema = baseConfigSchema.extend({ ...mongoFields, ...apiKeyFields });

export type ApiKeysConfig = z.infer<typeof apiKeysConfigSchema>;
