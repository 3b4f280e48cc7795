// openFileAnswer, get -r's per-file decrypt (#13: the data key goes to the cipher as a KeyObject made once per
// file, not as raw bytes): a sealed small file opens to its bytes, an altered one or another blob's key is
// refused, and the raw data key the provider handed over is zeroed afterwards either way.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HEADER_SIZE, generateKeyFile } from '../crypto/index.js';
import { isCofferError } from '../errors.js';
import { KeyFileDataKeys, type DataKeyProvider } from './data-keys.js';
import { openFileAnswer, prepareSmallFile } from './small-file.js';
import type { Manifest, NodeInfo, VaultClient } from './vault-client.js';

let dir: string;
let keys: KeyFileDataKeys;
const client = { http: { tokenSubject: null } } as unknown as VaultClient;

/** The provider, keeping every raw data key it hands out (to check that each was zeroed after use). */
function watched(): DataKeyProvider & { handed: Uint8Array[] } {
  const handed: Uint8Array[] = [];
  return {
    handed,
    newDataKey: (b) => keys.newDataKey(b),
    openDataKey: async (r, b) => {
      const dek = await keys.openDataKey(r, b);
      handed.push(dek);
      return dek;
    },
  };
}

/** A small file sealed as put -r seals it, and the answer a batch read gives for it. */
async function sealedFile(name: string, bytes: Buffer): Promise<{ node: NodeInfo; manifest: Manifest; sealed: Buffer }> {
  const p = join(dir, name);
  await writeFile(p, bytes);
  const { request, sealed } = await prepareSmallFile(client, p, { path: `/t/${name}`, keys });
  const manifest = { blobId: request.blobId, size: request.size, chunkCount: 1, state: 'committed', keyGeneration: 1, keyRecord: request.keyRecord } as unknown as Manifest;
  const node = { path: `/t/${name}`, name, type: 'file', size: request.size, blobId: request.blobId } as unknown as NodeInfo;
  return { node, manifest, sealed: Buffer.from(sealed) };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'coffer-small-open-'));
  await generateKeyFile(join(dir, 'k.key'));
  keys = await KeyFileDataKeys.open(join(dir, 'k.key'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

describe('openFileAnswer', () => {
  it('opens small files to their bytes and zeroes each raw data key', async () => {
    const provider = watched();
    for (const len of [0, 1, 4096, 100_000]) {
      const bytes = randomBytes(len);
      const answer = await sealedFile(`f${len}`, bytes);
      const got = await openFileAnswer(answer, answer.node.path, provider);
      expect(got.plaintext?.equals(bytes)).toBe(true);
      // the whole of its own memory: get -r's placement workers take it as it is, without a copy
      expect(got.plaintext?.byteOffset).toBe(0);
      expect(got.plaintext?.buffer.byteLength).toBe(len);
    }
    expect(provider.handed).toHaveLength(4);
    for (const dek of provider.handed) expect(dek.every((b) => b === 0)).toBe(true);
  });

  it('refuses an altered chunk (CHUNK_AUTH_FAILED) and still zeroes the raw data key', async () => {
    const provider = watched();
    const answer = await sealedFile('altered', randomBytes(5000));
    (answer.sealed[HEADER_SIZE + 10] as number) ^= 1;
    await expect(openFileAnswer(answer, answer.node.path, provider)).rejects.toSatisfy((e: unknown) => isCofferError(e, 'CHUNK_AUTH_FAILED'));
    expect(provider.handed).toHaveLength(1);
    expect(provider.handed[0]?.every((b) => b === 0)).toBe(true);
  });

  it('refuses a manifest whose size is not the sealed chunk\'s, smaller or larger, and zeroes the raw data key', async () => {
    for (const delta of [-1, 1]) {
      const provider = watched();
      const answer = await sealedFile(`size${delta}`, randomBytes(5000));
      const manifest = { ...answer.manifest, size: answer.manifest.size + delta };
      await expect(openFileAnswer({ ...answer, manifest }, answer.node.path, provider)).rejects.toSatisfy((e: unknown) => isCofferError(e, 'CHUNK_MISMATCH'));
      expect(provider.handed[0]?.every((b) => b === 0)).toBe(true);
    }
  });

  it('refuses a chunk under another data key (CHUNK_AUTH_FAILED)', async () => {
    const answer = await sealedFile('other-key', randomBytes(100));
    const other: DataKeyProvider = { newDataKey: (b) => keys.newDataKey(b), openDataKey: async () => new Uint8Array(randomBytes(32)) };
    await expect(openFileAnswer(answer, answer.node.path, other)).rejects.toSatisfy((e: unknown) => isCofferError(e, 'CHUNK_AUTH_FAILED'));
  });

  it('refuses a data key of the wrong size (KEY_INVALID) before opening anything', async () => {
    const answer = await sealedFile('short-key', randomBytes(10));
    const short: DataKeyProvider = { newDataKey: (b) => keys.newDataKey(b), openDataKey: async () => new Uint8Array(16) };
    await expect(openFileAnswer(answer, answer.node.path, short)).rejects.toSatisfy((e: unknown) => isCofferError(e, 'KEY_INVALID'));
  });
});
