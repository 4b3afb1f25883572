import { pino } from 'pino';
import type { Logger as PinoLogger, DestinationStream } from 'pino';

/**
 * Structured JSON lines. Secrets are kept out twice over: config values are `Secret` objects that
 * print as `[redacted]`, and pino also redacts any field that is named like one, in case a
 * library error carries a URL or header into a log call.
 */
export function createLogger(
  level: string,
  role: string,
  destination?: DestinationStream,
): PinoLogger {
  return pino(
    {
      level,
      base: { role },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: [
          'password',
          'apiKey',
          'authorization',
          '*.password',
          '*.apiKey',
          '*.authorization',
          'headers.authorization',
          'err.config',
        ],
        censor: '[redacted]',
      },
    },
    destination,
  );
}
