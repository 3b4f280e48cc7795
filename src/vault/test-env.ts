// Test support (not a test file): a Vault over the real SQLite metadata store and the real filesystem chunk
// store in a fresh temporary directory, plus helpers to seal chunks with a throwaway DEK.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { openChunkStore } from '../../storage-backend/index.js';
import type { ChunkStore } from '../../storage-backend/types.js';
import { CHUNK_SIZE, blobIdFromHex, sealChunk } from '../crypto/index.js';
import { openMetadataStore } from '../metadata/index.js';
import type { MetadataStore } from '../metadata/types.js';
import type { VaultOptions } from './context.js';
import { Vault } from './vault.js';

export interface TestVault {
  dir: string;
  dbPath: string;
  /** The MongoDB database name when `mongoUri` was given. */
  dbName: string | null;
  store: MetadataStore;
  chunks: ChunkStore;
  vault: Vault;
  close(): Promise<void>;
}

/** With `mongoUri` the metadata lives in a fresh database on that MongoDB-wire server, else in SQLite. */
export async function openTestVault(options: VaultOptions & { mongoUri?: string | null } = {}): Promise<TestVault> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'coffer-vault-'));
  const dbPath = path.join(dir, 'metadata.sqlite');
  const dbName = options.mongoUri ? `coffer_vault_${randomBytes(6).toString('hex')}` : null;
  const store = options.mongoUri && dbName
    ? await openMetadataStore({ kind: 'mongo', uri: options.mongoUri, dbName })
    : await openMetadataStore({ kind: 'sqlite', path: dbPath });
  const chunks = await openChunkStore({ kind: 'fs', root: path.join(dir, 'store') });
  const vault = await Vault.open(store, chunks, options);
  return {
    dir, dbPath, dbName, store, chunks, vault,
    async close() {
      await chunks.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export function newBlobHex(): string {
  return randomBytes(16).toString('hex');
}

export function newDek(): Uint8Array {
  return new Uint8Array(randomBytes(32));
}

/** Seals `plaintext` as chunk `index` of the blob. */
export function seal(dek: Uint8Array, blobHex: string, index: number, plaintext: Uint8Array, final: boolean, keyGeneration = 1): Promise<Uint8Array> {
  return sealChunk(dek, { blobId: blobIdFromHex(blobHex), index, keyGeneration, final }, plaintext);
}

/** Splits data into sealed chunks of format v1 (8 MiB each, last FINAL). */
export async function sealAll(dek: Uint8Array, blobHex: string, data: Uint8Array, keyGeneration = 1): Promise<Uint8Array[]> {
  const count = data.length === 0 ? 1 : Math.ceil(data.length / CHUNK_SIZE);
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    out.push(await seal(dek, blobHex, i, data.subarray(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE), i === count - 1, keyGeneration));
  }
  return out;
}

export async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}
