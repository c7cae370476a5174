/**
 * Structured JSON logs (pino). Secrets never reach a log line: authorization headers, API keys
 * and webhook secrets are redacted by path, and anything shaped like a raw key is censored.
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import { KEY_PREFIX } from '../db/keys.js';

const RAW_KEY = new RegExp(`${KEY_PREFIX}[A-Za-z0-9_-]{20,}`, 'g');

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'custody' },
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers.cookie',
          '*.api_key',
          '*.key',
          '*.secret',
          'secret',
          'authorization',
        ],
        censor: '[redacted]',
      },
      hooks: {
        // Last line of defence: a raw key that slipped into a message is masked.
        logMethod(args, method) {
          method.apply(
            this,
            args.map((a) => (typeof a === 'string' ? a.replace(RAW_KEY, `${KEY_PREFIX}[redacted]`) : a)) as Parameters<
              typeof method
            >,
          );
        },
      },
    },
    destination,
  );
}
