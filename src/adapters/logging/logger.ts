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
    // Synchronous by default: pino's default stream buffers, and a process killed (OOM, SIGKILL)
    // would lose its last lines, the ones an operator needs after a crash. A write is a few
    // microseconds for the two lines an email costs.
    destination ?? pino.destination({ dest: 1, sync: true }),
  );
}
