// The batch read over real HTTP (docs/http-api.md "Many small files in one request"): many files' node, manifest
// and sealed chunk in one streamed answer, in the order asked, each file checked and failing alone; and the
// client's reading of it (src/client/file-batch.ts), which trusts nothing: answers for other paths, a cut answer,
// lengths over one chunk and bytes after the end are refused.
import { readdir, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CHUNK_SIZE, MAX_SEALED_SIZE } from '../crypto/index.js';
import { FILES_MEDIA_TYPE, type FileAnswer } from '../client/file-batch.js';
import { VaultClient } from '../client/vault-client.js';
import { newBlobHex, newDek, sealAll } from '../vault/test-env.js';
import { FILE_MEDIA_TYPE, frameHead } from './framed-body.js';
import { call, errorCode, startTestServer, type TestServer } from './test-server.js';

let s: TestServer;
let alice: string;
let bob: string;
const sealedOf = new Map<string, Uint8Array>();
const keyRecord = { scheme: 'test', wrapped: 'AAAA' };

async function put(token: string, path: string, size: number): Promise<void> {
  const blobId = newBlobHex();
  const sealed = await sealAll(newDek(), blobId, randomBytes(size));
  if (sealed.length === 1) {
    const body = Buffer.concat([frameHead({ path, blobId, keyGeneration: 1, keyRecord, size }), sealed[0]!]);
    expect((await call(s.url, token, 'POST', '/v1/files', body, { 'content-type': FILE_MEDIA_TYPE })).status).toBe(201);
    sealedOf.set(path, sealed[0]!);
    return;
  }
  await call(s.url, token, 'POST', '/v1/uploads', { path, blobId, keyGeneration: 1, keyRecord, size });
  for (const [i, c] of sealed.entries()) await call(s.url, token, 'PUT', `/v1/uploads/${blobId}/chunks/${i}`, c);
  expect((await call(s.url, token, 'POST', `/v1/uploads/${blobId}/commit`, { chunkCount: sealed.length, size })).status).toBe(200);
}

beforeAll(async () => {
  s = await startTestServer({ defaultRootRole: 'none' });
  alice = await s.token('alice');
  bob = await s.token('bob');
  const admin = await s.token('root', true);
  await call(s.url, admin, 'POST', '/v1/fs/mkdir', { path: '/a/open', parents: true });
  await call(s.url, admin, 'PUT', '/v1/grants', { path: '/a', user: 'alice', role: 'write' });
  await call(s.url, admin, 'PUT', '/v1/grants', { path: '/a/open', user: 'bob', role: 'read' });
  for (let i = 0; i < 40; i++) await put(alice, `/a/f${i}`, 1000 + i);
  await put(alice, '/a/empty', 0);
  await put(alice, '/a/big', 200_000); // a record over the service's 64 KiB gathering of small records
  await put(alice, '/a/open/shared', 77);
  await put(alice, '/a/two', CHUNK_SIZE + 1);
});
afterAll(async () => s.close());

async function readAll(token: string, paths: string[]): Promise<FileAnswer[]> {
  const client = new VaultClient({ server: s.url, token });
  try {
    const out: FileAnswer[] = [];
    for await (const a of client.readFiles(paths)) out.push(a);
    return out;
  } finally {
    client.http.close();
  }
}

describe('POST /v1/fs/files/read', () => {
  it('answers every file in the order asked, each failing alone; sealed bytes are the stored chunk', async () => {
    const paths = ['/a/f3', '/a/none', '/a/empty', '/a', '/a/two', ...Array.from({ length: 40 }, (_, i) => `/a/f${i}`), '/a/big', '/a/f7', '/a/open/shared'];
    const got = await readAll(alice, paths);
    expect(got.map((a) => a.path)).toEqual(paths);
    const codes = got.map((a) => (a.error ? a.error.code : 'ok'));
    expect(codes.slice(0, 5)).toEqual(['ok', 'NOT_FOUND', 'ok', 'IS_A_DIRECTORY', 'ok']);
    for (const a of got) {
      if (a.error || a.path === '/a/two') continue;
      expect(a.manifest.chunkCount).toBe(1);
      expect(a.node.blobId).toBe(a.manifest.blobId);
      expect(Buffer.from(a.sealed!).equals(Buffer.from(sealedOf.get(a.path)!)), a.path).toBe(true);
    }
    const two = got[4]!;
    expect(two.error === undefined && two.manifest.chunkCount === 2 && two.sealed === null).toBe(true);
  });

  it('answers the stored bytes through many batches in parallel and after answers abandoned midway (pooled buffers)', async () => {
    // the route reads sealed chunks into pooled buffers and reuses them once an answer is sent: a buffer
    // reused too early would show here as another file's bytes
    await put(alice, '/a/big40k', 40 * 1024); // above the pooled size: a buffer of its own
    const paths = ['/a/big40k', ...Array.from({ length: 40 }, (_, i) => `/a/f${i}`)];
    for (let i = 0; i < 3; i++) {
      const client = new VaultClient({ server: s.url, token: alice });
      try {
        for await (const a of client.readFiles(paths)) if (a.path === '/a/f5') break; // abandons the answer
      } finally {
        client.http.close();
      }
    }
    const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => readAll(alice, i % 2 ? [...paths].reverse() : paths)));
    for (const got of answers) {
      expect(got.length).toBe(paths.length);
      for (const a of got) {
        if (a.error) throw a.error;
        expect(Buffer.from(a.sealed!).equals(Buffer.from(sealedOf.get(a.path)!)), a.path).toBe(true);
      }
    }
  });

  it('checks access per file: what the caller may not read fails alone, the rest is answered', async () => {
    const got = await readAll(bob, ['/a/f1', '/a/open/shared', '/a/f2']);
    expect(got.map((a) => (a.error ? a.error.code : 'ok'))).toEqual(['PERMISSION_DENIED', 'ok', 'PERMISSION_DENIED']);
    expect(got[1]!.error === undefined && Buffer.from(got[1]!.sealed!).equals(Buffer.from(sealedOf.get('/a/open/shared')!))).toBe(true);
  });

  it('walks each directory once per batch and looks a group\'s files up together, with the answers a single read gives', async () => {
    const getChild = vi.spyOn(s.env.store, 'getChild');
    const getChildren = vi.spyOn(s.env.store, 'getChildren');
    const getBlob = vi.spyOn(s.env.store, 'getBlob');
    try {
      const files = Array.from({ length: 40 }, (_, i) => `/a/f${i}`);
      const got = await readAll(alice, files);
      expect(got.every((a) => a.error === undefined)).toBe(true);
      // '/a' once, then one getChildren for the group's 40 files (was one getChild a file, and 2 a file before that)
      expect([getChild.mock.calls.length, getChildren.mock.calls.length, getBlob.mock.calls.length]).toEqual([1, 1, 0]);
    } finally {
      getChild.mockRestore();
      getChildren.mockRestore();
      getBlob.mockRestore();
    }
    // paths whose directory is missing or a file, the root (alice may not read it): each fails alone, as GET /v1/fs/file answers it
    const odd = ['/a/f1/x', '/zz/q', '/a/none', '/', '/a/f1', '/a/f1/x/y', '/a/open/shared'];
    const got = await readAll(alice, odd);
    const single = await Promise.all(odd.map(async (p) => {
      const res = await call(s.url, alice, 'GET', `/v1/fs/file?path=${encodeURIComponent(p)}`);
      return res.status === 200 ? 'ok' : await errorCode(res);
    }));
    expect(got.map((a) => (a.error ? a.error.code : 'ok'))).toEqual(single);
    expect(single).toEqual(['NOT_A_DIRECTORY', 'NOT_FOUND', 'NOT_FOUND', 'PERMISSION_DENIED', 'ok', 'NOT_A_DIRECTORY', 'ok']);
    // and per file, not per directory: bob may read one file of /a/open, none of /a
    expect((await readAll(bob, ['/a/open/shared', '/a/f1', '/a/open/shared'])).map((a) => (a.error ? a.error.code : 'ok'))).toEqual(['ok', 'PERMISSION_DENIED', 'ok']);
  });

  it('reads the chunks put -r packed together by runs: one readPackRange per run, not one read each; a lost pack fails its files alone', async () => {
    // two directories, each put as one batch (one pack each, as put -r packs a directory's files)
    const client = new VaultClient({ server: s.url, token: alice });
    const packed = async (dir: string, n: number): Promise<string[]> => {
      const files = await Promise.all(Array.from({ length: n }, async (_, i) => {
        const blobId = newBlobHex();
        const request = { path: `${dir}/p${i}`, blobId, keyGeneration: 1, keyRecord, size: 500 + i };
        const sealed = (await sealAll(newDek(), blobId, randomBytes(500 + i)))[0]!;
        sealedOf.set(request.path, sealed);
        return { request, sealed };
      }));
      const answers = await client.putSmallFiles(files);
      expect(answers.every((a) => !('error' in a))).toBe(true);
      return files.map((f) => f.request.path);
    };
    const chunks = s.env.chunks;
    const ranges = vi.spyOn(chunks, 'readPackRange');
    const singles = vi.spyOn(chunks, 'readInto');
    try {
      await call(s.url, alice, 'POST', '/v1/fs/mkdir', { path: '/a/pk1', parents: true });
      await call(s.url, alice, 'POST', '/v1/fs/mkdir', { path: '/a/pk2', parents: true });
      const one = await packed('/a/pk1', 100);
      const two = await packed('/a/pk2', 20);
      const paths = [...one, '/a/f1', ...two, '/a/none'];
      const got = await readAll(alice, paths);
      expect(got.map((a) => a.path)).toEqual(paths);
      for (const a of got.slice(0, -1)) {
        if (a.error) throw a.error;
        expect(Buffer.from(a.sealed!).equals(Buffer.from(sealedOf.get(a.path)!)), a.path).toBe(true);
      }
      expect(got.at(-1)!.error?.code).toBe('NOT_FOUND');
      // groups of at most 64 files: /a/pk1 in 2 runs, /a/pk2 in 1 or 2 (cut by a group); /a/f1 is a chunk file
      expect(ranges.mock.calls.length).toBeGreaterThanOrEqual(3);
      expect(ranges.mock.calls.length).toBeLessThanOrEqual(4);
      expect(singles.mock.calls.length).toBe(1);
      // a pack removed before any read of it (as GC removes a wholly dead pack; an open handle would still read
      // it): each of its files fails alone, as the one-file read answers it, and the rest are answered
      await call(s.url, alice, 'POST', '/v1/fs/mkdir', { path: '/a/pk3', parents: true });
      const three = await packed('/a/pk3', 10);
      const blobId = (await (await call(s.url, alice, 'GET', `/v1/fs/stat?path=${encodeURIComponent(three[0]!)}`)).json() as { blobId: string }).blobId;
      const packId = chunks.packedLocation!({ blobId, index: 0 })!.packId;
      const names = await readdir(s.env.dir, { recursive: true });
      await rm(path.join(s.env.dir, names.find((n) => path.basename(n) === packId)!));
      const again = await readAll(alice, [...three, one[0]!]);
      expect(again.slice(0, -1).every((a) => a.error !== undefined)).toBe(true);
      const res = await call(s.url, alice, 'GET', `/v1/fs/file?path=${encodeURIComponent(three[0]!)}`);
      expect(again[0]!.error!.code).toBe(await errorCode(res));
      expect(again.at(-1)!.error).toBeUndefined();
    } finally {
      ranges.mockRestore();
      singles.mockRestore();
      client.http.close();
    }
  });

  it('refuses a request that is not a list of 1..256 paths', async () => {
    for (const body of [{ paths: [] }, { paths: 'x' }, { paths: [1] }, { paths: Array.from({ length: 257 }, () => '/a/f1') }, { paths: ['/a/f1'], extra: 1 }]) {
      const res = await call(s.url, alice, 'POST', '/v1/fs/files/read', body);
      expect([res.status, await errorCode(res)]).toEqual([400, 'INVALID_ARGUMENT']);
    }
    const res = await call(s.url, '', 'POST', '/v1/fs/files/read', { paths: ['/a/f1'] });
    expect(res.status).toBe(401);
  });
});

describe('the client reading a batch answer trusts nothing', () => {
  let fake: Server;
  let answer: Buffer = Buffer.alloc(0);
  /** When set, the answer goes out in writes of this many bytes, one per turn of the event loop. */
  let pieceSize: number | null = null;
  let fakeUrl = '';
  beforeAll(async () => {
    fake = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': FILES_MEDIA_TYPE, 'content-length': String(answer.length) });
        if (pieceSize === null) {
          res.end(answer);
          return;
        }
        res.socket?.setNoDelay(true);
        void (async () => {
          for (let at = 0; at < answer.length; at += pieceSize) {
            res.write(answer.subarray(at, at + pieceSize));
            await new Promise((r) => setImmediate(r));
          }
          res.end();
        })();
      });
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
    fakeUrl = `http://127.0.0.1:${(fake.address() as AddressInfo).port}`;
  });
  afterAll(async () => new Promise<void>((r) => fake.close(() => r())));

  const node = (path: string): unknown => ({ path, blobId: 'b', type: 'file', size: 1 });
  const rec = (json: unknown, sealed = Buffer.alloc(0)): Buffer => Buffer.concat([frameHead(json), sealed]);
  const read = async (paths: string[]): Promise<string> => {
    const client = new VaultClient({ server: fakeUrl, token: 't' });
    try {
      for await (const _ of client.readFiles(paths)) { /* drain */ }
      return 'ok';
    } catch (e) {
      return `${(e as { code?: string }).code}: ${(e as Error).message}`;
    } finally {
      client.http.close();
    }
  };

  it('reads records cut across the pieces received at any point, each sealed part intact', async () => {
    const paths = ['/p/a', '/p/b', '/p/c', '/p/d'];
    const sealed = [randomBytes(1000), randomBytes(1), Buffer.alloc(0), randomBytes(3000)];
    answer = Buffer.concat([
      ...paths.map((p, i) => rec({ path: p, node: node(p), manifest: {}, sealedLength: (sealed[i] as Buffer).length }, sealed[i])),
      rec({ end: true, count: paths.length }),
    ]);
    for (const size of [1, 7, 4096]) {
      pieceSize = size;
      const client = new VaultClient({ server: fakeUrl, token: 't' });
      try {
        const got: Array<Buffer | null> = [];
        for await (const a of client.readFiles(paths)) got.push(a.error ? null : a.sealed);
        // compared after all were read: a later record's reading never changes an earlier one's bytes
        expect(got.map((b) => (b ? b.toString('hex') : '')), `pieces of ${size}`).toEqual(sealed.map((b) => b.toString('hex')));
      } finally {
        pieceSize = null;
        client.http.close();
      }
    }
  });

  it('accepts a well-formed answer and refuses each way of breaking it', async () => {
    const good = rec({ path: '/x', node: node('/x'), manifest: {}, sealedLength: 3 }, Buffer.from('abc'));
    const end = rec({ end: true, count: 1 });
    answer = Buffer.concat([good, end]);
    expect(await read(['/x'])).toBe('ok');
    const cases: Array<[string, Buffer]> = [
      ['a record for another path', Buffer.concat([rec({ path: '/y', node: node('/y'), manifest: {}, sealedLength: 0 }), end])],
      ['a node for another path', Buffer.concat([rec({ path: '/x', node: node('/y'), manifest: {}, sealedLength: 0 }), end])],
      ['cut before the end record', good],
      ['cut inside the sealed bytes', good.subarray(0, good.length - 1)],
      ['a wrong count', Buffer.concat([good, rec({ end: true, count: 2 })])],
      ['bytes after the end', Buffer.concat([good, end, Buffer.from([0])])],
      ['a length over one sealed chunk', Buffer.concat([rec({ path: '/x', node: node('/x'), manifest: {}, sealedLength: MAX_SEALED_SIZE + 1 }), end])],
      ['a JSON part that is not JSON', Buffer.concat([Buffer.from([0, 0, 0, 2]), Buffer.from('{{'), end])],
    ];
    for (const [what, body] of cases) {
      answer = body;
      expect(await read(['/x']), what).toMatch(/^INTEGRITY: malformed batch read answer/);
    }
  });
});
