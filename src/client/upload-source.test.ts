// `put` must never commit a mixture of two files: a source that changes while it is read is refused before the
// commit, and `--resume` continues only from the very source the upload was started with (another file of the
// same size, or this one modified since, is refused: the chunks already stored would be kept by length alone).
// Against the real storage service over HTTP.
import { randomBytes } from 'node:crypto';
import { open, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHUNK_SIZE } from '../crypto/index.js';
import { isCofferError } from '../errors.js';
import type { KeyFileDataKeys } from './data-keys.js';
import { downloadFile } from './download.js';
import { uploadFile } from './upload.js';
import { startClientTestEnv, type ClientTestEnv } from './test-env.js';
import type { VaultClient } from './vault-client.js';

let env: ClientTestEnv;
let work: string;
let client: VaultClient;
let keys: KeyFileDataKeys;

beforeAll(async () => {
  env = await startClientTestEnv('coffer-source-');
  ({ work, client, keys } = env);
});
afterAll(async () => env.close());

/** Starts an upload of `file` that stops after `chunks` chunks are stored (the process "dies"); returns the blob id. */
async function interrupted(file: string, vaultPath: string, chunks = 1): Promise<string> {
  let stored = 0;
  const onProgress = (): void => {
    if (++stored >= chunks) throw new Error('killed');
  };
  try {
    await uploadFile(client, file, { path: vaultPath, keys, concurrency: 1, onProgress });
  } catch (e) {
    if (isCofferError(e) && typeof e.details?.resumeBlobId === 'string') return e.details.resumeBlobId;
    throw e;
  }
  throw new Error('the upload was not interrupted');
}

describe('the source of a put', () => {
  it('a file changed while it is uploaded is not committed', async () => {
    const file = path.join(work, 'moving.bin');
    await writeFile(file, randomBytes(3 * CHUNK_SIZE));
    await new Promise((r) => setTimeout(r, 30)); // file times tick coarsely (a few ms): the change must land on a later tick
    let touched = false;
    const put = uploadFile(client, file, {
      path: '/moving.bin', keys, concurrency: 1,
      onProgress: () => {
        if (touched) return;
        touched = true;
        // someone writes into the file after its first chunk went out
        void open(file, 'r+').then(async (fh) => {
          await fh.write(Buffer.from('changed'), 0, 7, 0);
          await fh.close();
        });
      },
    });
    await expect(put).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(/changed while it was uploaded/) });
    await expect(client.stat('/moving.bin')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('--resume refuses another file of the same size, and continues from the same one', async () => {
    const a = path.join(work, 'a.bin');
    const b = path.join(work, 'b.bin');
    const bytesA = randomBytes(2 * CHUNK_SIZE + 5);
    await writeFile(a, bytesA);
    await writeFile(b, randomBytes(bytesA.length));
    const blobId = await interrupted(a, '/r.bin');
    await expect(uploadFile(client, b, { path: '/r.bin', keys, resume: blobId })).rejects.toMatchObject({
      code: 'CONFLICT', message: expect.stringMatching(/another file, or this file changed since/),
    });
    const done = await uploadFile(client, a, { path: '/r.bin', keys, resume: blobId });
    expect(done.skippedChunks).toBeGreaterThanOrEqual(1);
    const out = path.join(work, 'r.out');
    await downloadFile(client, '/r.bin', out, { keys });
    const fh = await open(out, 'r');
    const got = Buffer.alloc(bytesA.length);
    await fh.read(got, 0, got.length, 0);
    await fh.close();
    expect(got.equals(bytesA)).toBe(true);
  });

  it('--resume finishes an upload whose commit was cut short after the blob was committed but before its path was bound', async () => {
    const a = path.join(work, 'cut.bin');
    const bytes = randomBytes(2 * CHUNK_SIZE + 5);
    await writeFile(a, bytes);
    const blobId = await interrupted(a, '/cut.bin', 3); // every chunk stored
    // the service died between commit's two writes: the blob is committed, no file shows it
    const store = env.server.env.store;
    const records = await store.listUploadChunks(blobId);
    await store.updateBlob(blobId, 'uploading', { state: 'committed', size: bytes.length, chunkCount: 3, chunkSha256: records.map((r) => r.sha256) });
    await expect(client.stat('/cut.bin')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    const other = path.join(work, 'cut-other.bin');
    await writeFile(other, randomBytes(bytes.length));
    await expect(uploadFile(client, other, { path: '/cut.bin', keys, resume: blobId })).rejects.toMatchObject({ code: 'CONFLICT' });
    const done = await uploadFile(client, a, { path: '/cut.bin', keys, resume: blobId });
    expect([done.blobId, done.skippedChunks]).toEqual([blobId, 3]);
    const out = path.join(work, 'cut.out');
    await downloadFile(client, '/cut.bin', out, { keys });
    expect((await readFile(out)).equals(bytes)).toBe(true);
  });

  it('--resume refuses the same file once it was modified', async () => {
    const a = path.join(work, 'edited.bin');
    await writeFile(a, randomBytes(2 * CHUNK_SIZE));
    const blobId = await interrupted(a, '/edited.bin');
    await new Promise((r) => setTimeout(r, 30)); // a later tick of the file clock
    const fh = await open(a, 'r+');
    await fh.write(Buffer.from('x'), 0, 1, CHUNK_SIZE + 1); // same size, other bytes in a chunk not yet sent
    await fh.close();
    await expect(uploadFile(client, a, { path: '/edited.bin', keys, resume: blobId })).rejects.toMatchObject({ code: 'CONFLICT' });
  });
});
