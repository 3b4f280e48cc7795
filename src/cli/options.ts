// Shared CLI options: every flag that scripts use, each also read from its environment variable
// (DESIGN.md "Flags that scripts use"). Subcommands pick the ones they need.
import { Option } from 'commander';
import { CofferError, ErrorCode } from '../errors.js';

export const dataDirOption = (): Option =>
  new Option('--data-dir <dir>', 'data directory').env('COFFER_DATA_DIR').default('./data');
/** --listen with the server's own environment variable (COFFER_LISTEN for the storage service, COFFER_KMS_LISTEN for the KMS). */
export const listenOption = (fallback: string, env = 'COFFER_LISTEN'): Option =>
  new Option('--listen <host:port>', 'address to listen on').env(env).default(fallback);
export const serverOption = (): Option =>
  new Option('--server <url>', 'storage service URL').env('COFFER_SERVER').default('http://127.0.0.1:7700');
export const tokenOption = (): Option =>
  new Option('--token <jwt>', 'bearer token (see `coffer token`)').env('COFFER_TOKEN');
export const keyFileOption = (): Option =>
  new Option('--key-file <file>', '32-byte key file for client-held keys (see `coffer keygen`)').env('COFFER_KEY_FILE');
export const jsonOption = (): Option => new Option('--json', 'machine-readable JSON output');
export const mongoUriOption = (): Option =>
  new Option('--mongodb-uri <uri>', 'use MongoDB for metadata instead of SQLite in the data dir').env('COFFER_MONGODB_URI');


/** A whole number in [min, max] from a flag value. Throws INVALID_ARGUMENT naming the flag. */
export function intFlag(name: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `${name} must be a whole number from ${min} to ${max}, got "${value}"`);
  }
  return n;
}
