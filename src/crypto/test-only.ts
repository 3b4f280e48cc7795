// Guard for the few crypto entry points that take a caller-chosen nonce. They exist only to reproduce the
// committed test vectors (test/vectors/); a fixed nonce reused under one key breaks AES-GCM, so they refuse to
// run unless the process is a test run (vitest sets VITEST) or the vector generator (COFFER_TEST_VECTORS=1).
// They are not exported from src/crypto/index.ts.
import { CofferError, ErrorCode } from '../errors.js';

/** Throws INTERNAL unless running under vitest or the test-vector generator. */
export function assertTestVectorMode(what: string): void {
  const env = process.env;
  if (env.VITEST === 'true' || env.COFFER_TEST_VECTORS === '1') return;
  throw new CofferError(ErrorCode.INTERNAL, `${what} takes a fixed nonce and is for test vectors only`);
}
