// An entry point for test/unit/fatal-errors.test.ts, bundled the way scripts/build.mjs bundles the real ones.
import { z } from 'zod';
import { loadConfig } from '../../../shared/config.js';
import { exitOnFatalErrors } from '../../../shared/fatal-errors.js';

exitOnFatalErrors('fixture');

/** A bug in kiot's code, called back from library code (zod). */
export function failInsideLibrary(): never {
  throw new Error('a bug in kiot code');
}

const settings = loadConfig(z.object({ FIXTURE_CRASH: z.enum(['in-library']).optional() }), process.env);
if (settings.FIXTURE_CRASH === 'in-library') z.string().transform(failInsideLibrary).parse('x');
