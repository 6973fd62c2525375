import { parseArgs } from 'node:util';
import { mintApiKey } from '../../../shared/api-keys.js';

/**
 * `node dist/device-registry.js mint-api-key --id ops --scopes devices:read,devices:write [--append '<API_KEYS json>']`
 * prints two lines: `API_KEY=<the key, shown once>` and `API_KEYS=<the JSON array with the new entry>`
 * (the existing array from --append, or a new one). Only the second belongs in the functions' Secret.
 */
export async function mintApiKeyCli(argv: string[], write: (line: string) => void): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      id: { type: 'string' },
      scopes: { type: 'string', default: '*' },
      append: { type: 'string', default: '[]' },
    },
  });
  if (!values.id) throw new Error('usage: mint-api-key --id <keyId> [--scopes a:b,c:d|*] [--append <API_KEYS json>]');
  const existing = JSON.parse(values.append ?? '[]') as { id: string }[];
  const { key, entry } = await mintApiKey(
    values.id,
    (values.scopes ?? '*').split(',').map((scope) => scope.trim()),
  );
  write(`API_KEY=${key}`);
  write(`API_KEYS=${JSON.stringify([...existing.filter((other) => other.id !== entry.id), entry])}`);
}
