// `coffer bench metadata`: 10,000 file creates, listing a 100,000-entry directory page by page, and stat
// latency (p50/p99) — on SQLite, and on MongoDB when a URI is given (or the MongoDB-wire test server is built).
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ROOT_ID, type MetadataStore, type TreeNode } from '../src/metadata/types.js';
import { openMetadataStore } from '../src/metadata/index.js';
import { Vault } from '../src/vault/index.js';
import { openChunkStore } from '../storage-backend/index.js';

export interface MetadataBenchOptions {
  /** Start the MongoDB-wire test server (FerretDB harness, built by .ci/install-test-servers.sh) when no URI is given. */
  mongoWire?: boolean;
  creates?: number;
  listEntries?: number;
  stats?: number;
  mongoUri?: string | null;
  log?: (line: string) => void;
}

function fileNode(parentId: string, name: string): TreeNode {
  const now = new Date();
  return { id: randomUUID(), parentId, name, type: 'file', blobId: null, size: 0, owner: 'bench', createdAt: now, modifiedAt: now, version: 1 };
}

function dirNode(name: string): TreeNode {
  return { ...fileNode(ROOT_ID, name), type: 'dir' };
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

export async function benchMetadataStore(label: string, store: MetadataStore, options: MetadataBenchOptions): Promise<Record<string, number>> {
  const log = options.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const creates = options.creates ?? 10_000;
  const listEntries = options.listEntries ?? 100_000;
  const stats = options.stats ?? 10_000;

  // 10,000 creates (one insert each, as the vault does at commit)
  const createDir = dirNode(`creates-${randomUUID()}`);
  await store.insertNode(createDir);
  let t0 = performance.now();
  for (let i = 0; i < creates; i++) await store.insertNode(fileNode(createDir.id, `file-${i.toString().padStart(6, '0')}`));
  const createSecs = (performance.now() - t0) / 1000;
  const createsPerSec = creates / createSecs;
  log(`${label}: ${creates} creates in ${createSecs.toFixed(2)} s = ${createsPerSec.toFixed(0)}/s (target ≥ 2,000/s on SQLite)`);

  // a 100,000-entry directory, listed page by page (1,000 per page, as the API does)
  const bigDir = dirNode(`big-${randomUUID()}`);
  await store.insertNode(bigDir);
  for (let i = 0; i < listEntries; i++) await store.insertNode(fileNode(bigDir.id, `entry-${i.toString().padStart(7, '0')}`));
  t0 = performance.now();
  let seen = 0;
  let after: string | undefined;
  for (;;) {
    const page = await store.listChildren(bigDir.id, { after, limit: 1000 });
    seen += page.items.length;
    if (page.next === null) break;
    after = page.next;
  }
  const listSecs = (performance.now() - t0) / 1000;
  if (seen !== listEntries) throw new Error(`listed ${seen} of ${listEntries}`);
  log(`${label}: listed ${seen} entries page by page in ${listSecs.toFixed(2)} s (target < 2 s on SQLite)`);

  // stat: look a random name up by (parent, name), as path resolution does per segment
  const lat: number[] = [];
  for (let i = 0; i < stats; i++) {
    const name = `entry-${Math.floor(Math.random() * listEntries).toString().padStart(7, '0')}`;
    const s = performance.now();
    const node = await store.getChild(bigDir.id, name);
    lat.push(performance.now() - s);
    if (!node) throw new Error(`stat lost ${name}`);
  }
  lat.sort((a, b) => a - b);
  const p50 = pct(lat, 50);
  const p99 = pct(lat, 99);
  log(`${label}: stat p50 ${p50.toFixed(3)} ms, p99 ${p99.toFixed(3)} ms over ${stats} lookups (target p99 < 2 ms on SQLite)`);
  return { createsPerSec, listSeconds: listSecs, statP50Ms: p50, statP99Ms: p99 };
}

/**
 * The same operations one level up, as the service performs them: vault mkdir (path resolution, permission
 * check, insert, hash-chained audit entry) and vault stat of a path three levels deep.
 */
export async function benchVault(label: string, store: MetadataStore, chunkRoot: string, options: MetadataBenchOptions): Promise<Record<string, number>> {
  const log = options.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const creates = options.creates ?? 10_000;
  const stats = options.stats ?? 10_000;
  const chunks = await openChunkStore({ kind: 'fs', root: chunkRoot });
  try {
    const vault = await Vault.open(store, chunks, { defaultRootRole: 'write' });
    const actor = { user: 'bench', admin: false };
    const base = `/vault-bench-${randomUUID()}`;
    await vault.mkdir(actor, `${base}/a/b`, { parents: true });
    let t0 = performance.now();
    for (let i = 0; i < creates; i++) await vault.mkdir(actor, `${base}/a/b/d${i.toString().padStart(6, '0')}`);
    const secs = (performance.now() - t0) / 1000;
    log(`${label}: ${creates} vault creates (resolve + permission + insert + audit) in ${secs.toFixed(2)} s = ${(creates / secs).toFixed(0)}/s`);
    const lat: number[] = [];
    for (let i = 0; i < stats; i++) {
      const p = `${base}/a/b/d${Math.floor(Math.random() * creates).toString().padStart(6, '0')}`;
      t0 = performance.now();
      await vault.stat(actor, p);
      lat.push(performance.now() - t0);
    }
    lat.sort((a, b) => a - b);
    log(`${label}: vault stat of a 4-level path p50 ${pct(lat, 50).toFixed(3)} ms, p99 ${pct(lat, 99).toFixed(3)} ms`);
    return { vaultCreatesPerSec: creates / secs, vaultStatP50Ms: pct(lat, 50), vaultStatP99Ms: pct(lat, 99) };
  } finally {
    await chunks.close();
  }
}

export async function benchMetadata(options: MetadataBenchOptions): Promise<Record<string, unknown>> {
  const log = options.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const results: Record<string, unknown> = {};
  const dir = await mkdtemp(path.join(os.tmpdir(), 'coffer-bench-meta-'));
  try {
    const sqlite = await openMetadataStore({ kind: 'sqlite', path: path.join(dir, 'metadata.sqlite') });
    try {
      results.sqlite = { ...(await benchMetadataStore('sqlite', sqlite, options)), ...(await benchVault('sqlite', sqlite, path.join(dir, 'chunks'), options)) };
    } finally {
      await sqlite.close();
    }
    let wire: { uri: string; stop(): void } | null = null;
    if (!options.mongoUri && options.mongoWire) wire = await startMongoWire(path.join(dir, 'mongo-wire'));
    const uri = options.mongoUri ?? wire?.uri;
    try {
      if (uri) {
        const label = wire ? 'mongodb-wire (FerretDB test harness)' : 'mongodb';
        const mongo = await openMetadataStore({ kind: 'mongo', uri, dbName: `coffer_bench_${Date.now()}` });
        try {
          results.mongo = { ...(await benchMetadataStore(label, mongo, options)), ...(await benchVault(label, mongo, path.join(dir, 'chunks'), options)) };
        } finally {
          await mongo.close();
        }
      } else {
        log('mongodb: skipped (pass --mongodb-uri, or --mongo-wire after .ci/install-test-servers.sh built the test server)');
      }
    } finally {
      wire?.stop();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return results;
}

/** Starts the FerretDB-based MongoDB-wire harness of test/servers (it prints `READY <uri>`). */
async function startMongoWire(dataDir: string): Promise<{ uri: string; stop(): void }> {
  const repo = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../' : '../', import.meta.url));
  const binary = path.join(repo, 'test', 'servers', 'bin', 'ferretdb-harness');
  if (!existsSync(binary)) throw new Error(`${binary} is not built: run .ci/install-test-servers.sh`);
  const child = spawn(binary, ['--listen', '127.0.0.1:0', '--dir', dataDir], { stdio: ['pipe', 'pipe', 'inherit'] });
  const uri = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /READY (\S+)/.exec(out);
      if (m) resolve(m[1] as string);
    });
    child.once('exit', (code) => reject(new Error(`MongoDB-wire harness exited with ${code}`)));
  });
  return { uri, stop: () => child.kill('SIGTERM') };
}
