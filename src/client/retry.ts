// Retries an idempotent request after a transient failure (the service restarting, a dropped connection, a
// timeout), with exponential backoff and jitter. Permanent errors (a bad chunk, no space, no permission) are
// thrown at once. Chunk PUTs and GETs are idempotent, so a retry can never duplicate or corrupt anything.
import { isCofferError } from '../errors.js';

export interface RetryOptions {
  /** Total attempts (default 6: about 8 s of backoff in all, enough for a service restart). */
  attempts?: number;
  /** First backoff in ms (default 250), doubled each time, with ±50 % jitter. */
  baseDelayMs?: number;
  onRetry?: (attempt: number, error: unknown) => void;
  /** Which failures to retry (default: isTransient). */
  retryIf?: (error: unknown) => boolean;
}

/**
 * The request never reached the service (the connection was refused, as during a restart): sending it again
 * cannot do anything twice, whatever its method.
 */
export function neverSent(e: unknown): boolean {
  return isCofferError(e) && e.details?.neverSent === true;
}

/** Transient: the request may succeed unchanged if sent again. */
export function isTransient(e: unknown): boolean {
  return isCofferError(e) && (e.code === 'UNAVAILABLE' || e.code === 'TIMEOUT') && e.retryable;
}

export async function withRetry<T>(fn: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const attempts = Math.max(1, options.attempts ?? 6);
  let delay = options.baseDelayMs ?? 250;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (attempt >= attempts || !(options.retryIf ?? isTransient)(e)) throw e;
      options.onRetry?.(attempt, e);
      await new Promise((r) => setTimeout(r, delay * (0.5 + Math.random())));
      delay *= 2;
    }
  }
}
