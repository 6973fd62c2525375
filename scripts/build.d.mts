/** Types of build.mjs for the tests that build fixtures the way scripts/build.mjs builds the entry points. */
export function bundleEntries(entries: Record<string, string>, outdir: string): Promise<[string, number][]>;
export function keepOwnMappings(mapFile: string): void;
