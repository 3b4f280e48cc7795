// Builds the storage-service client and the data-key provider from the shared flags.
import type { Command } from 'commander';
import { KeyFileDataKeys, type DataKeyProvider } from '../client/data-keys.js';
import { VaultClient } from '../client/vault-client.js';
import { CofferError, ErrorCode } from '../errors.js';
import { keyFileOption, serverOption, tokenOption } from './options.js';

export interface ServerFlags {
  server: string;
  token?: string;
}

export interface KeyFlags {
  keyFile?: string;
}

/** Adds --server and --token (with their environment variables) to a command. */
export function withServer(cmd: Command): Command {
  return cmd.addOption(serverOption()).addOption(tokenOption());
}

export function withKeys(cmd: Command): Command {
  return cmd.addOption(keyFileOption());
}

export function connect(flags: ServerFlags, concurrency = 4): VaultClient {
  if (!flags.token) {
    throw new CofferError(ErrorCode.UNAUTHENTICATED, 'no token: pass --token or set COFFER_TOKEN (`coffer token --user NAME` mints a development token)');
  }
  return new VaultClient({ server: flags.server, token: flags.token, maxSockets: concurrency + 2 });
}

export async function dataKeys(flags: KeyFlags): Promise<DataKeyProvider> {
  if (flags.keyFile) return KeyFileDataKeys.open(flags.keyFile);
  throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'no key: pass --key-file or set COFFER_KEY_FILE (`coffer keygen --out FILE` creates one)');
}

/** Runs fn with a connected client and always closes it. */
export async function withClient<T>(flags: ServerFlags, fn: (client: VaultClient) => Promise<T>, concurrency?: number): Promise<T> {
  const client = connect(flags, concurrency);
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

/** Joins a vault directory path and a name. */
export function joinVaultPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir.replace(/\/+$/, '')}/${name}`;
}
