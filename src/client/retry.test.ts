// withRetry: transient failures are retried with backoff, permanent ones are not, and attempts are bounded.
import { describe, expect, it } from 'vitest';
import { CofferError } from '../errors.js';
import { isTransient, withRetry } from './retry.js';

const transient = (): CofferError => new CofferError('UNAVAILABLE', 'connection reset', { retryable: true });

describe('withRetry', () => {
  it('retries transient failures until one succeeds', async () => {
    let calls = 0;
    const retries: number[] = [];
    const v = await withRetry(async () => {
      calls++;
      if (calls < 3) throw transient();
      return 'ok';
    }, { baseDelayMs: 1, onRetry: (n) => retries.push(n) });
    expect(v).toBe('ok');
    expect(calls).toBe(3);
    expect(retries).toEqual([1, 2]);
  });

  it('does not retry permanent errors, and gives up after the last attempt', async () => {
    let calls = 0;
    await expect(withRetry(async () => {
      calls++;
      throw new CofferError('CHUNK_MISMATCH', 'header names another blob');
    }, { baseDelayMs: 1 })).rejects.toMatchObject({ code: 'CHUNK_MISMATCH' });
    expect(calls).toBe(1);
    calls = 0;
    await expect(withRetry(async () => {
      calls++;
      throw transient();
    }, { attempts: 3, baseDelayMs: 1 })).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(calls).toBe(3);
  });

  it('treats no space and server bugs as permanent', () => {
    expect(isTransient(new CofferError('NO_SPACE', 'full'))).toBe(false);
    expect(isTransient(new CofferError('INTERNAL', 'bug'))).toBe(false);
    expect(isTransient(new CofferError('UNAVAILABLE', 'x', { retryable: false }))).toBe(false);
    expect(isTransient(transient())).toBe(true);
  });
});
