import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { z } from 'zod';
import { baseConfigSchema } from '../../../../shared/config.js';
import { ROOT } from './manifests.js';

/** Where each deployable defines its config schema, in the order looked at. */
const CANDIDATES = (name: string) =>
  name === 'bridge' || name === 'tick-gate'
    ? [`${name}/config.ts`]
    : name === 'console'
      ? ['console/server/config.ts']
      : ['config.ts', 'schema.ts'].map((file) => `functions/${name}/${file}`);

export interface ConfigSchema {
  file: string;
  exportName: string;
  shape: Record<string, z.ZodType>;
}

function isConfigObject(value: unknown): value is z.ZodObject {
  const shape = (value as { shape?: Record<string, unknown> } | null)?.shape;
  return !!shape && typeof shape === 'object' && Object.keys(baseConfigSchema.shape).every((key) => key in shape);
}

/** The exported zod object that extends `baseConfigSchema` in the deployable's config module, if any. */
export async function configSchemaOf(name: string): Promise<ConfigSchema | undefined> {
  for (const file of CANDIDATES(name)) {
    if (!existsSync(join(ROOT, file))) continue;
    const module = (await import(pathToFileURL(join(ROOT, file)).href)) as Record<string, unknown>;
    for (const [exportName, value] of Object.entries(module)) {
      if (isConfigObject(value)) return { file, exportName, shape: value.shape as Record<string, z.ZodType> };
    }
  }
  return undefined;
}

/** A field is required when it has neither a default nor `optional()`: it rejects `undefined`. */
export const isRequired = (field: z.ZodType) => !field.safeParse(undefined).success;
