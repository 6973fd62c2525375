import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger };

/**
 * JSON logs with stable keys: `service` on every line, `time` as ISO-8601. The capability name is the
 * service name, as it is the Knative Service's and the bundle's.
 */
export function createLogger(service: string, level = 'info', destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ sync: false }),
  );
}
