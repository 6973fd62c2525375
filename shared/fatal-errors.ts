import { writeSync } from 'node:fs';
import { pino } from 'pino';
import { ConfigError, describeConfigIssue } from './config.js';
import { createLogger } from './logger.js';

/**
 * How a deployable's process ends (README "Exit statuses"): 0 after a clean stop (SIGTERM/SIGINT), 78 when
 * its configuration is wrong (EX_CONFIG of sysexits.h: restarting cannot help, fix the environment), 1 for
 * anything else (a bug or an unrecoverable fault; the last log line has the stack).
 */
export const EXIT_CONFIGURATION = 78;
export const EXIT_CRASH = 1;

/**
 * The first call of every entry point (bridge, router, each function, the simulator). Whatever nobody
 * caught ends the process here instead of in Node's default handler, which prints the source line of the
 * throw: in a bundle that is one line of hundreds of kilobytes.
 * - A configuration error: one line per problem on stderr (which variable, what is wrong, what is expected),
 *   exit status 78.
 * - Anything else: one `fatal` JSON log line on stderr with the error and its stack (mapped to the TypeScript
 *   sources: the build's launcher enables source maps), exit status 1.
 */
export function exitOnFatalErrors(service: string): void {
  process.on('uncaughtException', (error) => {
    if (error instanceof ConfigError) {
      const lines = error.issues.map((issue) => `${service}: configuration error: ${describeConfigIssue(issue)}\n`);
      writeSync(2, lines.join(''));
      process.exit(EXIT_CONFIGURATION);
    }
    const logger = createLogger(service, 'fatal', pino.destination({ fd: 2, sync: true }));
    logger.fatal({ err: error }, `${service} crashed: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(EXIT_CRASH);
  });
}
