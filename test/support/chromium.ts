import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium } from 'playwright-core';

/** Debian's chromium package (`apt-get install chromium`); CHROMIUM_PATH to use another build. Never downloaded. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** What every test browser is started with: headless, as root (no sandbox), nothing fetched on its own. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface TestBrowser {
  context: BrowserContext;
  close(): Promise<void>;
}

/**
 * Debian's Chromium through playwright-core, with a fresh profile. With `networkNamespaceOf`, the browser runs
 * inside that process's network namespace (a stack started with `unshare --net`): a wrapper execs it under
 * `nsenter --net`, and playwright still talks to it over its pipe.
 */
export async function launchChromium(
  options: { networkNamespaceOf?: number; viewport?: { width: number; height: number } } = {},
): Promise<TestBrowser> {
  const profile = mkdtempSync(join(tmpdir(), 'kiot-chromium-'));
  let executablePath = CHROMIUM;
  if (options.networkNamespaceOf !== undefined) {
    executablePath = join(profile, 'chromium-in-namespace.sh');
    writeFileSync(
      executablePath,
      `#!/bin/sh\nexec nsenter --net=/proc/${options.networkNamespaceOf}/ns/net ${CHROMIUM} "$@"\n`,
    );
    chmodSync(executablePath, 0o755);
  }
  // A fresh --user-data-dir per run; playwright passes it itself through launchPersistentContext.
  const context = await chromium.launchPersistentContext(join(profile, 'user-data'), {
    executablePath,
    headless: true,
    args: CHROMIUM_ARGS,
    ...(options.viewport ? { viewport: options.viewport } : {}),
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
