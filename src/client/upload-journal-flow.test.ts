// How `put` uses its journal of unfinished uploads, against the real service over HTTP: what it continues, what
// it leaves alone, and what it never does (replace a file the user did not ask to replace, report a path that
// does not exist, lose the record on a failure of the moment, or drop another upload's record).
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHUNK_SIZE } from '../crypto/index.js';
import { isCofferError } from '../errors.js';
import type { KeyFileDataKeys } from './data-keys.js';
import { uploadFile } from './upload.js';
import { UploadJournal, type UploadRecord } from './upload-journal.js';
import { startClientTestEnv, type ClientTestEnv } from './test-env.js';
import { VaultClient } from './vault-client.js';

let env: ClientTestEnv;
let work: string;
let client: VaultClient;
let keys: KeyFileDataKeys;
let journal: UploadJournal;

beforeAll(async () => {
  env = await startClientTestEnv('coffer-journal-flow-');
  ({ work, client, keys } = env);
  journal = new UploadJournal(path.join(work, 'state', 'uploads'));
});
afterAll(async () => env.close());

function recordOf(vaultPath: string, local: string): UploadRecord {
  return journal.recordFor(env.server.url, vaultPath, local);
}

/** A put of `local` to `vaultPath` that dies after `chunks` chunks are stored; returns the recorded blob id. */
async function killedPut(local: string, vaultPath: string, options: { chunks?: number; overwrite?: boolean } = {}): Promise<string> {
  let stored = 0;
  const record = recordOf(vaultPath, local);
  await uploadFile(client, local, {
    path: vaultPath, keys, concurrency: 1, overwrite: options.overwrite, journal: record,
    onProgress: () => {
      if (++stored >= (options.chunks ?? 1)) throw new Error('killed');
    },
  }).then(() => expect.unreachable('the put was not interrupted'), (e: unknown) => {
    if (!(isCofferError(e) && typeof e.details?.resumeBlobId === 'string')) throw e;
  });
  return (await record.recall()) as string;
}

async function twoChunkFile(name: string): Promise<string> {
  const file = path.join(work, name);
  await writeFile(file, randomBytes(2 * CHUNK_SIZE + 7));
  return file;
}

describe('put and its journal of unfinished uploads', () => {
  it('keeps the record through a failure of the moment (an expired token) and continues once it passes', async () => {
    const file = await twoChunkFile('token.bin');
    const blobId = await killedPut(file, '/token.bin');
    const expired = new VaultClient({ server: env.server.url, token: 'not-a-valid-token' });
    try {
      await expect(uploadFile(expired, file, { path: '/token.bin', keys, journal: recordOf('/token.bin', file) })).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    } finally {
      expired.close();
    }
    expect(await recordOf('/token.bin', file).recall()).toBe(blobId);
    const done = await uploadFile(client, file, { path: '/token.bin', keys, journal: recordOf('/token.bin', file) });
    expect([done.blobId, done.resumed, done.skippedChunks]).toEqual([blobId, true, 1]);
    expect(await recordOf('/token.bin', file).recall()).toBeNull();
  });

  it('never continues an upload started with another --force choice: the file is not replaced unasked', async () => {
    const file = await twoChunkFile('force.bin');
    await writeFile(path.join(work, 'first.bin'), 'the file already there');
    await uploadFile(client, path.join(work, 'first.bin'), { path: '/force.bin', keys });
    const forced = await killedPut(file, '/force.bin', { overwrite: true });
    // the same put without --force: the recorded upload (which would replace /force.bin) is not continued
    await expect(uploadFile(client, file, { path: '/force.bin', keys, journal: recordOf('/force.bin', file) })).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    expect((await client.stat('/force.bin')).size).toBe('the file already there'.length);
    expect((await client.uploadState(forced)).state).toBe('uploading'); // left for GC, not aborted
  });

  it('an upload committed and moved since is no answer for its old path: the file is sent afresh', async () => {
    const file = await twoChunkFile('moved.bin');
    const blobId = await killedPut(file, '/moved.bin', { chunks: 3 });
    await env.server.env.vault.commitUpload({ user: 'alice', admin: false }, blobId, { chunkCount: 3, size: 2 * CHUNK_SIZE + 7 }); // its answer was lost
    await client.move('/moved.bin', '/elsewhere.bin');
    const done = await uploadFile(client, file, { path: '/moved.bin', keys, journal: recordOf('/moved.bin', file) });
    expect([done.node.path, done.resumed, done.blobId === blobId]).toEqual(['/moved.bin', false, false]);
    expect((await client.stat('/elsewhere.bin')).blobId).toBe(blobId);
  });

  it('a --resume of another upload that fails leaves the recorded one alone', async () => {
    const file = await twoChunkFile('other.bin');
    const recorded = await killedPut(file, '/other.bin');
    await expect(uploadFile(client, file, { path: '/other.bin', keys, resume: 'ab'.repeat(16), journal: recordOf('/other.bin', file) })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(await recordOf('/other.bin', file).recall()).toBe(recorded);
  });
});
