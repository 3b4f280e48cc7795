// Structured logging (pino). Redacts credentials wherever they might appear; callers log request ids, routes
// and error codes, never tokens, keys or key records.
import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';

const REDACT = [
  'authorization', 'headers.authorization', 'req.headers.authorization', '*.authorization',
  'token', '*.token', 'keyRecord', '*.keyRecord', 'dek', '*.dek',
];

/** A pino logger with Coffer's redaction rules. `level` 'silent' for tests. */
export function createLogger(options: { level?: LoggerOptions['level']; name?: string; destination?: NodeJS.WritableStream } = {}): Logger {
  const opts: LoggerOptions = { level: options.level ?? process.env.COFFER_LOG_LEVEL ?? 'info', name: options.name ?? 'coffer', redact: { paths: REDACT, censor: '[redacted]' } };
  return options.destination ? pino(opts, options.destination as pino.DestinationStream) : pino(opts);
}
