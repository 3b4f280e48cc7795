// Tree, permissions, grants, probes and metrics over real HTTP; listing pagination over thousands of entries;
// half-done uploads never listed; GC of stale uploads.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { newBlobHex, newDek, seal } from '../vault/test-env.js';
import { call, errorCode, startTestServer, type TestServer } from './test-server.js';

const keyRecord = { scheme: 'test' };

describe('with defaultRootRole write', () => {
  let s: TestServer;
  let alice: string;
  beforeAll(async () => {
    s = await startTestServer();
    alice = await s.token('alice');
  });
  afterAll(async () => s.close());

  it('lists a few thousand entries page by page, in byte order, with no half-done upload', async () => {
    await call(s.url, alice, 'POST', '/v1/fs/mkdir', { path: '/many' });
    const names: string[] = [];
    const actor = { user: 'alice', admin: false };
    for (let i = 0; i < 2500; i++) names.push(`f${String(i).padStart(5, '0')}`);
    for (const n of names) await s.env.vault.mkdir(actor, `/many/${n}`);
    const pending = newBlobHex();
    expect((await call(s.url, alice, 'POST', '/v1/uploads', { path: '/many/zz-pending', blobId: pending, keyGeneration: 1, keyRecord })).status).toBe(201);
    await call(s.url, alice, 'PUT', `/v1/uploads/${pending}/chunks/0`, await seal(newDek(), pending, 0, new Uint8Array(4), true));
    const seen: string[] = [];
    let after: string | null = null;
    let pages = 0;
    do {
      const q: string = `/v1/fs/list?path=/many&limit=1000${after ? `&after=${encodeURIComponent(after)}` : ''}`;
      const page = (await (await call(s.url, alice, 'GET', q)).json()) as { items: Array<{ name: string; path: string }>; next: string | null };
      seen.push(...page.items.map((i) => i.name));
      after = page.next;
      pages++;
    } while (after);
    expect(pages).toBeGreaterThanOrEqual(3);
    expect(seen).toEqual(names);
    expect(await errorCode(await call(s.url, alice, 'GET', '/v1/fs/list?path=/many&limit=0'))).toBe('INVALID_ARGUMENT');
    expect(await errorCode(await call(s.url, alice, 'GET', '/v1/fs/list?path=/many&limit=1001'))).toBe('INVALID_ARGUMENT');
    // GC: too early nothing happens; after the grace period the stale upload and its chunk are gone
    expect((await s.env.vault.runGc(new Date())).expiredUploads).toBe(0);
    const r = await s.env.vault.runGc(new Date(Date.now() + 25 * 3600 * 1000));
    expect(r).toMatchObject({ expiredUploads: 1, purgedBlobs: 1 });
    expect(await s.env.chunks.list(pending)).toEqual([]);
    expect(await errorCode(await call(s.url, alice, 'GET', `/v1/uploads/${pending}`))).toBe('NOT_FOUND');
  });

  it('mkdir, move, remove through the API', async () => {
    let res = await call(s.url, alice, 'POST', '/v1/fs/mkdir', { path: '/t/u/v', parents: true });
    expect(res.status).toBe(201);
    res = await call(s.url, alice, 'POST', '/v1/fs/mkdir', { path: '/t/u/v', parents: true });
    expect(res.status).toBe(200);
    res = await call(s.url, alice, 'POST', '/v1/fs/move', { from: '/t', to: '/t/u/v/t' });
    expect(await errorCode(res)).toBe('INVALID_ARGUMENT');
    res = await call(s.url, alice, 'POST', '/v1/fs/move', { from: '/t/u', to: '/w' });
    expect(((await res.json()) as { path: string }).path).toBe('/w');
    res = await call(s.url, alice, 'POST', '/v1/fs/remove', { path: '/w' });
    expect([res.status, await errorCode(res)]).toEqual([409, 'DIRECTORY_NOT_EMPTY']);
    res = await call(s.url, alice, 'POST', '/v1/fs/remove', { path: '/w', recursive: true });
    expect(await res.json()).toEqual({ removed: 2 });
    res = await call(s.url, alice, 'GET', '/v1/fs/stat?path=/w/v');
    expect(await errorCode(res)).toBe('NOT_FOUND');
  });

  it('probes and metrics', async () => {
    expect(await (await fetch(`${s.url}/healthz`)).json()).toEqual({ status: 'ok' });
    expect(await (await fetch(`${s.url}/readyz`)).json()).toEqual({ status: 'ready' });
    const text = await (await fetch(`${s.url}/metrics`)).text();
    expect(text).toContain('coffer_http_requests_total{method="GET",route="/v1/fs/list",status="200"}');
    expect(text).toContain('coffer_chunk_writes_total{result="ok"}');
    expect(text).toMatch(/coffer_http_bytes_in_total \d+/);
    expect(text).toContain('coffer_chunk_put_duration_seconds_bucket');
    const res = await fetch(`${s.url}/healthz`, { headers: { 'x-request-id': 'abc-123' } });
    expect(res.headers.get('x-request-id')).toBe('abc-123');
  });
});

describe('with defaultRootRole none', () => {
  let s: TestServer;
  let admin: string;
  let alice: string;
  let bob: string;
  beforeAll(async () => {
    s = await startTestServer({ defaultRootRole: 'none' });
    admin = await s.token('ops', true);
    alice = await s.token('alice');
    bob = await s.token('bob');
  });
  afterAll(async () => s.close());

  it('denies by default and follows grants', async () => {
    expect(await errorCode(await call(s.url, alice, 'GET', '/v1/fs/list?path=/'))).toBe('PERMISSION_DENIED');
    expect((await call(s.url, alice, 'POST', '/v1/fs/mkdir', { path: '/p' })).status).toBe(403);
    expect((await call(s.url, admin, 'POST', '/v1/fs/mkdir', { path: '/p' })).status).toBe(201);
    expect((await call(s.url, alice, 'PUT', '/v1/grants', { path: '/p', user: 'alice', role: 'write' })).status).toBe(403);
    let res = await call(s.url, admin, 'PUT', '/v1/grants', { path: '/p', user: 'alice', role: 'write' });
    expect(((await res.json()) as { role: string }).role).toBe('write');
    expect(await errorCode(await call(s.url, admin, 'PUT', '/v1/grants', { path: '/p', user: 'bob', role: 'owner' }))).toBe('INVALID_ARGUMENT');
    const blobId = newBlobHex();
    expect(await errorCode(await call(s.url, bob, 'POST', '/v1/uploads', { path: '/p/x', blobId, keyGeneration: 1, keyRecord }))).toBe('PERMISSION_DENIED');
    expect((await call(s.url, alice, 'POST', '/v1/uploads', { path: '/p/x', blobId, keyGeneration: 1, keyRecord })).status).toBe(201);
    await call(s.url, alice, 'PUT', `/v1/uploads/${blobId}/chunks/0`, await seal(newDek(), blobId, 0, new Uint8Array(4), true));
    expect((await call(s.url, alice, 'POST', `/v1/uploads/${blobId}/commit`, { chunkCount: 1, size: 4 })).status).toBe(200);
    expect(await errorCode(await call(s.url, bob, 'GET', `/v1/blobs/${blobId}/chunks/0`))).toBe('PERMISSION_DENIED');
    expect(await errorCode(await call(s.url, bob, 'GET', `/v1/uploads/${blobId}`))).toBe('PERMISSION_DENIED');
    res = await call(s.url, admin, 'PUT', '/v1/grants', { path: '/p/x', user: 'bob', role: 'read' });
    expect((await call(s.url, bob, 'GET', `/v1/blobs/${blobId}/chunks/0`)).status).toBe(200);
    expect(await errorCode(await call(s.url, bob, 'POST', '/v1/fs/remove', { path: '/p/x' }))).toBe('PERMISSION_DENIED');
    res = await call(s.url, admin, 'GET', '/v1/grants?path=/p');
    expect(await res.json()).toMatchObject({ grants: [{ user: 'alice', role: 'write' }] });
    res = await call(s.url, admin, 'DELETE', '/v1/grants?path=/p/x&user=bob');
    expect(await res.json()).toEqual({ deleted: true });
    expect((await call(s.url, bob, 'GET', `/v1/blobs/${blobId}`)).status).toBe(403);
    expect(await errorCode(await call(s.url, alice, 'GET', '/v1/audit/head'))).toBe('PERMISSION_DENIED');
    const head = (await (await call(s.url, admin, 'GET', '/v1/audit/head')).json()) as { seq: number; hash: string };
    expect(head.seq).toBeGreaterThan(5);
    const v = await s.env.vault.verifyAudit();
    expect(v).toMatchObject({ ok: true, head });
  });

  it('write on a shared directory does not let a user move a colleague\'s subtree under their own and become its admin', async () => {
    expect((await call(s.url, admin, 'POST', '/v1/fs/mkdir', { path: '/shared' })).status).toBe(201);
    for (const user of ['alice', 'bob']) await call(s.url, admin, 'PUT', '/v1/grants', { path: '/shared', user, role: 'write' });
    expect((await call(s.url, alice, 'POST', '/v1/fs/mkdir', { path: '/shared/adir' })).status).toBe(201);
    expect((await call(s.url, bob, 'POST', '/v1/fs/mkdir', { path: '/shared/bdir' })).status).toBe(201);
    // bob owns bdir; moving alice's adir under it would make him admin of it by ownership
    let res = await call(s.url, bob, 'POST', '/v1/fs/move', { from: '/shared/adir', to: '/shared/bdir/adir' });
    expect([res.status, await errorCode(res)]).toEqual([403, 'PERMISSION_DENIED']);
    expect(await errorCode(await call(s.url, bob, 'PUT', '/v1/grants', { path: '/shared/adir', user: 'carol', role: 'admin' }))).toBe('PERMISSION_DENIED');
    // renaming in place changes no one's access: write is enough
    res = await call(s.url, bob, 'POST', '/v1/fs/move', { from: '/shared/adir', to: '/shared/adir2' });
    expect(res.status).toBe(200);
    // the owner may move her own directory wherever she can write
    res = await call(s.url, alice, 'POST', '/v1/fs/move', { from: '/shared/adir2', to: '/shared/bdir/adir' });
    expect(res.status).toBe(200);
  });
});

describe('garbage collection in the service', () => {
  it('runs a first pass right after start, not one whole interval later', async () => {
    const s = await startTestServer({ gcIntervalMs: 3_600_000 });
    try {
      const alice = { user: 'alice', admin: false };
      const blobId = 'ab'.repeat(16);
      await s.env.vault.createUpload(alice, { path: '/abandoned', blobId, keyGeneration: 1, keyRecord: { scheme: 'test' } });
      await s.env.vault.abortUpload(alice, blobId); // 'deleting': the next pass purges it
      await vi.waitFor(async () => expect(await s.env.store.getBlob(blobId)).toBeNull(), { timeout: 10_000, interval: 100 });
    } finally {
      await s.close();
    }
  });
});

describe('readiness', () => {
  it('answers 503 UNAVAILABLE when the metadata store is gone', async () => {
    const s = await startTestServer();
    try {
      expect((await fetch(`${s.url}/readyz`)).status).toBe(200);
      await s.env.store.close();
      const res = await fetch(`${s.url}/readyz`);
      expect([res.status, await errorCode(res)]).toEqual([503, 'UNAVAILABLE']);
      expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    } finally {
      await s.close();
    }
  });
});
