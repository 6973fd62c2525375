import { writeFileSync } from 'node:fs';
import { asyncApiDocument } from './document.js';

// `npm run asyncapi`: writes docs/asyncapi.json from the zod schemas (a test fails while it is not current).
const target = process.argv[2] ?? 'docs/asyncapi.json';
writeFileSync(target, `${JSON.stringify(asyncApiDocument(), null, 2)}\n`);
process.stdout.write(`wrote ${target}\n`);
