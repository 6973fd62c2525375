import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, type BrowserContext, chromium } from 'playwright-core';

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
/** The browser's executable: Chromium itself, or a wrapper that runs it in another network namespace. */
function executableIn(profile: string, networkNamespaceOf: number | undefined): string {
  if (networkNamespaceOf === undefined) return CHROMIUM;
  const wrapper = join(profile, 'chromium-in-namespace.sh');
  writeFileSync(wrapper, `#!/bin/sh\nexec nsenter --net=/proc/${networkNamespaceOf}/ns/net ${CHROMIUM} "$@"\n`);
  chmodSync(wrapper, 0o755);
  return wrapper;
}

/**
 * A browser for several independent contexts (each its own cookies, storage and connection pool: several
 * people at once, where one context would share Chromium's six connections per host among all its pages).
 */
export async function launchChromiumBrowser(options: { networkNamespaceOf?: number } = {}): Promise<{
  browser: Browser;
  close(): Promise<void>;
}> {
  const profile = mkdtempSync(join(tmpdir(), 'kiot-chromium-'));
  const browser = await chromium.launch({
    executablePath: executableIn(profile, options.networkNamespaceOf),
    headless: true,
    args: CHROMIUM_ARGS,
  });
  return {
    browser,
    async close() {
      await browser.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export async function launchChromium(
  options: { networkNamespaceOf?: number; viewport?: { width: number; height: number } } = {},
): Promise<TestBrowser> {
  const profile = mkdtempSync(join(tmpdir(), 'kiot-chromium-'));
  const executablePath = executableIn(profile, options.networkNamespaceOf);
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
