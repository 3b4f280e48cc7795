// A hostile storage service must not make `get` write outside its destination: the names it sends back
// (in a listing for `get -r`, in a manifest for `get` into a directory) are refused unless they are one safe
// path segment. Tested against a real HTTP server that lies.
import { createServer, type Server } from 'node:http';
import { mkdtemp, readFile, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadFile } from './download.js';
import { localName } from './local-name.js';
import { downloadTree } from './tree-transfer.js';
import { VaultClient } from './vault-client.js';
import type { DataKeyProvider } from './data-keys.js';

const HOSTILE = ['..', '.', '', '../../../../tmp/escaped.bin', 'a/b', 'nul\u0000byte', 'x'.repeat(300)];

let server: Server;
let url: string;
let work: string;
let hostileName = '';
let claimedSize = 1;
let manifestRefusal: { status: number; code: string } | null = null;
/** Whether the fake service has the batch read (else 404 for its route, and get -r asks file by file). */
let batchRead = false;
beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'coffer-names-'));
  server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const node = { id: 'n1', path: '/evil/f', name: hostileName, type: 'file', size: 1, blobId: 'ab'.repeat(16), owner: 'a', createdAt: '', modifiedAt: '2025-01-01T00:00:00.000Z' };
    res.setHeader('content-type', 'application/json');
    if (u.pathname === '/v1/fs/list') res.end(JSON.stringify({ items: [node], next: null }));
    else if (u.pathname === '/v1/fs/files/read' && manifestRefusal && batchRead) {
      // the batch read's answer: this file's error record, then the end record (docs/http-api.md)
      const frame = (v: unknown): Buffer => {
        const j = Buffer.from(JSON.stringify(v));
        const p = Buffer.alloc(4);
        p.writeUInt32BE(j.length);
        return Buffer.concat([p, j]);
      };
      res.setHeader('content-type', 'application/vnd.coffer.files+v1');
      res.end(Buffer.concat([frame({ path: node.path, error: { code: manifestRefusal.code, message: 'says the service' }, status: manifestRefusal.status }), frame({ end: true, count: 1 })]));
    } else if ((u.pathname === '/v1/fs/manifest' || u.pathname === '/v1/fs/file') && manifestRefusal) {
      res.statusCode = manifestRefusal.status;
      res.end(JSON.stringify({ error: { code: manifestRefusal.code, message: 'says the service' } }));
    } else if (u.pathname === '/v1/fs/manifest') res.end(JSON.stringify({ node, manifest: { blobId: 'ab'.repeat(16), size: claimedSize, chunkCount: Math.max(1, Math.ceil(claimedSize / (8 * 1024 * 1024))), state: 'committed', keyGeneration: 1, keyRecord: { scheme: 'x' }, chunks: [] } }));
    else {
      res.statusCode = 404;
      res.end(JSON.stringify({ error: { code: 'NOT_FOUND', message: 'no' } }));
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  await rm(work, { recursive: true, force: true });
});

// never reached: the name is refused before any key is needed
const keys: DataKeyProvider = { openDataKey: () => Promise.reject(new Error('no key should be asked for')) } as unknown as DataKeyProvider;

describe('names from the service', () => {
  it('localName passes a plain name and refuses traversal, separators, NUL, empty and overlong names', () => {
    expect(localName('report 2024 (final).csv')).toBe('report 2024 (final).csv');
    for (const bad of HOSTILE) expect(() => localName(bad), JSON.stringify(bad)).toThrow(/not a safe local file name/);
  });

  it('get -r and get into a directory refuse a hostile name and write nothing anywhere', async () => {
    const client = new VaultClient({ server: url, token: 't' });
    try {
      for (const name of HOSTILE) {
        hostileName = name;
        const dest = path.join(work, 'dest');
        await expect(downloadTree(client, '/evil', dest, { keys })).rejects.toMatchObject({ code: 'INTEGRITY' });
        await expect(downloadFile(client, '/evil/f', `${dest}/`, { keys })).rejects.toMatchObject({ code: 'INTEGRITY' });
        expect(await readdir(dest), JSON.stringify(name)).toEqual([]);
      }
      expect((await readdir(work)).sort()).toEqual(['dest']);
    } finally {
      client.close();
    }
  });

  it.each([false, true])('get -r skips a file only when it exists locally, never because the service says ALREADY_EXISTS (batch read: %s)', async (batch) => {
    batchRead = batch;
    hostileName = 'f.bin';
    manifestRefusal = { status: 409, code: 'ALREADY_EXISTS' };
    const client = new VaultClient({ server: url, token: 't' });
    const dest = path.join(work, 'told');
    try {
      await expect(downloadTree(client, '/evil', dest, { keys })).rejects.toMatchObject({ code: 'ALREADY_EXISTS', message: expect.stringContaining('says the service') });
      // a local file that differs is fetched again: the service's ALREADY_EXISTS stops that, and the file stays
      await writeFile(path.join(dest, 'f.bin'), 'mine');
      await expect(downloadTree(client, '/evil', dest, { keys })).rejects.toMatchObject({ code: 'ALREADY_EXISTS', message: expect.stringContaining('says the service') });
      expect(await readFile(path.join(dest, 'f.bin'), 'utf8')).toBe('mine');
      // the same file (size and the vault's modification time) is skipped without asking the service
      await writeFile(path.join(dest, 'f.bin'), 'm');
      await utimes(path.join(dest, 'f.bin'), new Date('2025-01-01T00:00:00.000Z'), new Date('2025-01-01T00:00:00.000Z'));
      expect(await downloadTree(client, '/evil', dest, { keys })).toMatchObject({ files: 0, skipped: 1 });
    } finally {
      client.close();
      manifestRefusal = null;
      batchRead = false;
      await rm(dest, { recursive: true, force: true });
    }
  });

  it('a manifest claiming an enormous file costs no memory up front: the first missing chunk ends it', async () => {
    hostileName = 'big.bin';
    claimedSize = 2 ** 52; // 2^29 chunks of 8 MiB (a real 16 TiB file is already 2^21 of them)
    const keyed: DataKeyProvider = { openDataKey: () => Promise.resolve(new Uint8Array(32)) } as unknown as DataKeyProvider;
    const client = new VaultClient({ server: url, token: 't' });
    const dest = path.join(work, 'huge');
    try {
      const before = process.memoryUsage().heapUsed;
      await expect(downloadFile(client, '/evil/f', dest, { keys: keyed })).rejects.toMatchObject({ code: 'NOT_FOUND' });
      expect(process.memoryUsage().heapUsed - before).toBeLessThan(64 * 1024 * 1024);
      expect((await readdir(work)).filter((n) => n.includes('coffer-partial'))).toEqual([]);
    } finally {
      client.close();
      claimedSize = 1;
    }
  });
});
