// Differential test: blobs sealed by the project code are opened by the independent Python reader
// (open_blob.py, written only from DESIGN.md, using the `cryptography` package), laid out on disk as DESIGN.md's
// filesystem backend does. Tampering, truncation and the committed invalid vectors must make it fail.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pLimit from 'p-limit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHUNK_SIZE, blobIdToHex, newBlobId, sealStream } from '../../src/crypto/index.js';
import { openFsChunkStore } from '../../storage-backend/fs/index.js';

const READER = fileURLToPath(new URL('open_blob.py', import.meta.url));

interface RunResult { code: number; stdout: Buffer; stderr: string }

function runReader(args: string[]): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile('python3', [READER, ...args], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr: stderr.toString('utf8') });
    });
  });
}

/** DESIGN.md: <root>/chunks/<hex[0:2]>/<hex[2:4]>/<blob hex>/<index as 8 hex digits>. */
function chunkDir(root: string, blobHex: string): string {
  return join(root, 'chunks', blobHex.slice(0, 2), blobHex.slice(2, 4), blobHex);
}
const chunkName = (index: number): string => index.toString(16).padStart(8, '0');

let root: string;
const dek = new Uint8Array(randomBytes(32));
const dekHex = Buffer.from(dek).toString('hex');
const blobId = newBlobId();
const blobHex = blobIdToHex(blobId);
const size = 2 * CHUNK_SIZE + 4321;
const data = randomBytes(size);
let dir: string;

async function* pieces(): AsyncGenerator<Uint8Array> {
  for (let off = 0; off < size; off += 3_000_000) yield data.subarray(off, Math.min(off + 3_000_000, size));
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'coffer-reader-'));
  dir = chunkDir(root, blobHex);
  await mkdir(dir, { recursive: true });
  for await (const c of sealStream(pieces(), dek, { blobId, keyGeneration: 5 })) {
    await writeFile(join(dir, chunkName(c.index)), c.bytes);
  }
});
afterAll(async () => { await rm(root, { recursive: true, force: true }); });

describe('independent Python reader', () => {
  it('has python3 with the cryptography package', async () => {
    const r = await new Promise<string>((resolve) => {
      execFile('python3', ['-c', 'import cryptography; print(cryptography.__version__)'], (err, out) => resolve(err ? `missing: ${err.message}` : out));
    });
    expect(r, 'pip install cryptography').not.toMatch(/^missing/);
  });

  it('opens a 3-chunk blob sealed by the project code, byte for byte', async () => {
    expect((await readdir(dir)).sort()).toEqual(['00000000', '00000001', '00000002']);
    const out = join(root, 'plain.bin');
    const r = await runReader([dir, dekHex, blobHex, '--out', out, '--size', String(size), '--key-generation', '5']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(Buffer.compare(await readFile(out), data)).toBe(0);
    const toStdout = await runReader([dir, dekHex, blobHex]);
    expect(toStdout.code).toBe(0);
    expect(Buffer.compare(toStdout.stdout, data)).toBe(0);
  });

  it('fails, writing nothing, on a tampered chunk, a wrong key, another blob id or wrong manifest facts', async () => {
    const path = join(dir, '00000001');
    const original = await readFile(path);
    const tampered = Buffer.from(original);
    tampered[1000] = (tampered[1000] ?? 0) ^ 0x04;
    await writeFile(path, tampered);
    const out = join(root, 'tampered.bin');
    try {
      const r = await runReader([dir, dekHex, blobHex, '--out', out]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^open_blob: chunk 00000001: authentication tag did not verify/);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(existsSync(out)).toBe(false);
      expect((await readdir(root)).filter((n) => n.startsWith('.open_blob-'))).toEqual([]);
      const toStdout = await runReader([dir, dekHex, blobHex]);
      expect(toStdout.code).toBe(1);
      expect(toStdout.stdout.length).toBe(0); // chunk 0 was fine, but nothing is released before all verify
    } finally {
      await writeFile(path, original);
    }
    const otherKey = randomBytes(32).toString('hex');
    expect((await runReader([dir, otherKey, blobHex])).code).toBe(1);
    expect((await runReader([dir, dekHex, blobIdToHex(newBlobId())])).stderr).toMatch(/belongs to blob/);
    expect((await runReader([dir, dekHex, blobHex, '--size', String(size + 1)])).code).toBe(1);
    expect((await runReader([dir, dekHex, blobHex, '--key-generation', '6'])).code).toBe(1);
  });

  it('opens blobs whose chunks sit in packs (pack file v2) written by the project store, alone or beside chunk files', async () => {
    const storeRoot = join(root, 'store');
    const store = await openFsChunkStore({ root: storeRoot });
    const blobs: Array<{ hex: string; plain: Buffer }> = [];
    const packed: Array<{ ref: { blobId: string; index: number }; data: Uint8Array }> = [];
    try {
      for (const n of [0, 1, 5000, 70_000]) {
        const id = newBlobId();
        const plain = randomBytes(n);
        for await (const c of sealStream((async function* () { yield plain; })(), dek, { blobId: id, keyGeneration: 1 })) packed.push({ ref: { blobId: blobIdToHex(id), index: c.index }, data: c.bytes });
        blobs.push({ hex: blobIdToHex(id), plain });
      }
      // a two-chunk blob: chunk 0 packed, chunk 1 a v1 chunk file
      const mixedId = newBlobId();
      const mixed = randomBytes(CHUNK_SIZE + 10);
      const sealedMixed: Uint8Array[] = [];
      for await (const c of sealStream((async function* () { yield mixed; })(), dek, { blobId: mixedId, keyGeneration: 1 })) sealedMixed.push(c.bytes);
      packed.push({ ref: { blobId: blobIdToHex(mixedId), index: 0 }, data: sealedMixed[0]! });
      const { packId } = await store.putPack(packed);
      await store.put({ blobId: blobIdToHex(mixedId), index: 1 }, (async function* () { yield sealedMixed[1]!; })());
      for (const b of blobs) {
        const r = await runReader(['--store', storeRoot, dekHex, b.hex, '--size', String(b.plain.length)]);
        expect(r.stderr).toBe('');
        expect(Buffer.compare(r.stdout, b.plain)).toBe(0);
      }
      const m = await runReader(['--store', storeRoot, dekHex, blobIdToHex(mixedId)]);
      expect(m.code, m.stderr).toBe(0);
      expect(Buffer.compare(m.stdout, mixed)).toBe(0);
      // a damaged index: the pack is not used at all, so its blobs have no chunks
      const packPath = join(storeRoot, 'packs', packId.slice(0, 2), packId);
      const bytes = await readFile(packPath);
      bytes[bytes.length - 48 - 5] = (bytes[bytes.length - 48 - 5] ?? 0) ^ 1;
      await writeFile(packPath, bytes);
      const bad = await runReader(['--store', storeRoot, dekHex, blobs[2]!.hex]);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/no chunks of blob/);
      expect((await runReader(['--store', storeRoot, dekHex, blobIdToHex(mixedId)])).stderr).toMatch(/chunk 00000000 is missing/);
    } finally {
      await store.close();
    }
  });

  it('fails on a truncated blob (last chunk removed) and on a missing middle chunk', async () => {
    for (const victim of ['00000002', '00000001']) {
      const path = join(dir, victim);
      const saved = await readFile(path);
      await unlink(path);
      try {
        const r = await runReader([dir, dekHex, blobHex]);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(victim === '00000002' ? /lacks FINAL/ : /00000001 is missing/);
        expect(r.stdout.length).toBe(0);
      } finally {
        await writeFile(path, saved);
      }
    }
  });

  it('agrees with the committed vectors: small valid ones open, every invalid one fails', async () => {
    const vectors = JSON.parse(readFileSync(new URL('../vectors/chunk-v1.json', import.meta.url), 'utf8')) as {
      dek: string;
      blobs: Array<{ name: string; blobId: string; size: number; chunks: Array<{ sealed?: string }> }>;
      invalid: Array<{ name: string; sealed: string; expect: { blobId: string; index: number; keyGeneration: number; final: boolean } }>;
    };
    for (const blob of vectors.blobs.filter((b) => b.chunks.length === 1 && b.chunks[0]?.sealed)) {
      const d = join(root, 'vec', blob.name);
      await mkdir(d, { recursive: true });
      await writeFile(join(d, '00000000'), Buffer.from(blob.chunks[0]?.sealed ?? '', 'hex'));
      const r = await runReader([d, vectors.dek, blob.blobId, '--size', String(blob.size)]);
      expect(r.code, `${blob.name}: ${r.stderr}`).toBe(0);
      expect(r.stdout.length).toBe(blob.size);
    }
    // Vectors that are only wrong relative to a reader's expectation of index or FINAL need a manifest the
    // directory layout cannot express (a lone file is chunk 0 and last); the rest must all fail here.
    const layoutOnly = new Set(['expected at index 1', 'expected non-final']);
    const limit = pLimit(3); // each run starts a Python interpreter; keep the 2-core machine responsive
    const results = await Promise.all(vectors.invalid.filter((v) => !layoutOnly.has(v.name)).map((v, i) => limit(async () => {
      const d = join(root, 'invalid', String(i));
      await mkdir(d, { recursive: true });
      await writeFile(join(d, '00000000'), Buffer.from(v.sealed, 'hex'));
      return { name: v.name, r: await runReader([d, vectors.dek, v.expect.blobId, '--key-generation', String(v.expect.keyGeneration)]) };
    })));
    for (const { name, r } of results) {
      expect(r.code, `${name} should fail`).toBe(1);
      expect(r.stdout.length).toBe(0);
    }
    expect(results.length).toBeGreaterThan(15);
  });
});
