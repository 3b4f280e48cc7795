// Test support (not a test file): a real storage service over a data directory (SQLite, or MongoDB with a URI),
// a key file and a client for alice, to fill a vault through the normal upload path and read a restored one
// back through the normal download path.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openFsChunkStore } from '../../storage-backend/index.js';
import { PACK_TRAILER_SIZE, packEntryCount } from '../../storage-backend/pack-format.js';
import { mintDevToken } from '../api/auth/index.js';
import { generateKeyFile } from '../crypto/index.js';
import { KeyFileDataKeys } from '../client/data-keys.js';
import { downloadFile } from '../client/download.js';
import { uploadFile } from '../client/upload.js';
import { VaultClient } from '../client/vault-client.js';
import { startService, type RunningService } from '../service.js';
import { createLogger } from '../telemetry/index.js';

export interface LiveVault {
  dataDir: string;
  service: RunningService;
  client: VaultClient;
  close(): Promise<void>;
}

/** Starts `coffer serve` in-process on `dataDir` (alice may write everywhere). */
export async function serveVault(dataDir: string, mongoUri?: string, options: { gcIntervalMs?: number } = {}): Promise<LiveVault> {
  const service = await startService({
    dataDir, listen: { host: '127.0.0.1', port: 0 }, mongoUri, defaultRootRole: 'write', gcIntervalMs: options.gcIntervalMs ?? 0, logger: createLogger({ level: 'silent' }),
  });
  const client = new VaultClient({ server: service.url, token: await mintDevToken(dataDir, { user: 'alice' }) });
  return {
    dataDir, service, client,
    async close() {
      client.close();
      await service.close();
    },
  };
}

export interface Workspace {
  dir: string;
  keys: KeyFileDataKeys;
  /** Writes random bytes to a local file and uploads it to `vaultPath`; returns the bytes. */
  put(vault: LiveVault, vaultPath: string, size: number): Promise<Buffer>;
  /** Downloads `vaultPath` through the normal (verifying) download path. */
  get(vault: LiveVault, vaultPath: string): Promise<Buffer>;
  close(): Promise<void>;
}

export async function workspace(): Promise<Workspace> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'coffer-backup-test-'));
  await generateKeyFile(path.join(dir, 'k'));
  const keys = await KeyFileDataKeys.open(path.join(dir, 'k'));
  let n = 0;
  return {
    dir, keys,
    async put(vault, vaultPath, size) {
      const bytes = randomBytes(size);
      const local = path.join(dir, `up-${++n}`);
      await writeFile(local, bytes);
      await uploadFile(vault.client, local, { path: vaultPath, keys, overwrite: true });
      await rm(local);
      return bytes;
    },
    async get(vault, vaultPath) {
      const local = path.join(dir, `down-${++n}`);
      await downloadFile(vault.client, vaultPath, local, { keys });
      const bytes = await readFile(local);
      await rm(local);
      return bytes;
    },
    close: () => rm(dir, { recursive: true, force: true }),
  };
}

/**
 * Chunks under a store root as a reader of the disk sees them: chunk files (`chunks/…/<8 hex>`) plus the entries of
 * every complete pack (`packs/<2 hex>/<32 hex>`, counted from its trailer). Reads only: safe while a backup writes.
 */
export async function chunksOnDisk(root: string): Promise<number> {
  let n = 0;
  for (const e of await readdir(path.join(root, 'chunks'), { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (e.isFile() && /^[0-9a-f]{8}$/.test(e.name)) n++;
  }
  for (const e of await readdir(path.join(root, 'packs'), { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (!e.isFile() || !/^[0-9a-f]{32}$/.test(e.name)) continue;
    const bytes = await readFile(path.join(e.parentPath, e.name));
    n += packEntryCount(bytes.subarray(bytes.length - PACK_TRAILER_SIZE));
  }
  return n;
}

/** Where a chunk's bytes sit under a store root: its chunk file, or its slice of a pack. Throws when it has none. */
export async function chunkSpot(root: string, blobId: string, index: number): Promise<{ file: string; offset: number; length: number; packed: boolean }> {
  const store = await openFsChunkStore({ root });
  try {
    const at = store.packs.known({ blobId, index });
    if (at) return { file: store.packs.packPath(at.packId), offset: at.offset, length: at.length, packed: true };
    const file = path.join(root, 'chunks', blobId.slice(0, 2), blobId.slice(2, 4), blobId, index.toString(16).padStart(8, '0'));
    const size = (await readFile(file)).length;
    return { file, offset: 0, length: size, packed: false };
  } finally {
    await store.close();
  }
}
