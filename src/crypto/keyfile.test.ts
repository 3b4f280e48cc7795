// Tests for the key-file envelope: key file creation and permission checks on a real filesystem, and that a
// KeyRecord opens only for its own blob and key, with every field checked.
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCofferError, type ErrorCode } from '../errors.js';
import { blobIdToHex, newBlobId } from './blob-id.js';
import {
  dataKeyUnwrapper, dataKeyWrapper, generateKeyFile, kekIdOf, newDataKey, parseKeyRecord, readKeyFile, unwrapDataKey, wrapDataKey, type KeyRecord,
} from './keyfile.js';

let dir: string;
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'coffer-keyfile-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

async function rejectsCode(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  await expect(p).rejects.toSatisfy((e: unknown) => isCofferError(e, code));
}
function throwsCode(fn: () => unknown, code: ErrorCode): void {
  let caught: unknown;
  try { fn(); } catch (e) { caught = e; }
  expect(isCofferError(caught, code), String(caught)).toBe(true);
}

describe('key file', () => {
  it('generateKeyFile writes 32 random bytes with mode 0600 and refuses to overwrite', async () => {
    const path = join(dir, 'k1');
    const { kekId } = await generateKeyFile(path);
    const st = await stat(path);
    expect(st.size).toBe(32);
    if (process.platform !== 'win32') expect(st.mode & 0o777).toBe(0o600);
    const kek = await readKeyFile(path);
    expect(kekIdOf(kek)).toBe(kekId);
    const before = await readFile(path);
    await rejectsCode(generateKeyFile(path), 'ALREADY_EXISTS');
    expect(await readFile(path)).toEqual(before);
    await generateKeyFile(join(dir, 'k2'));
    expect(await readFile(join(dir, 'k2'))).not.toEqual(before);
  });

  it('readKeyFile refuses missing, wrong-size, non-regular and group/other-accessible files', async () => {
    await rejectsCode(readKeyFile(join(dir, 'absent')), 'NOT_FOUND');
    for (const n of [0, 31, 33, 64]) {
      const p = join(dir, `size-${n}`);
      await writeFile(p, Buffer.alloc(n), { mode: 0o600 });
      await rejectsCode(readKeyFile(p), 'KEY_INVALID');
    }
    await rejectsCode(readKeyFile(dir), 'KEY_INVALID');
    if (process.platform !== 'win32' && process.getuid?.() !== undefined) {
      const p = join(dir, 'loose');
      await generateKeyFile(p);
      for (const mode of [0o640, 0o604, 0o620, 0o601]) {
        await chmod(p, mode);
        await rejectsCode(readKeyFile(p), 'KEY_INVALID');
      }
      await chmod(p, 0o400);
      expect((await readKeyFile(p)).length).toBe(32);
    }
  });
});

describe('KeyRecord', () => {
  const kek = newDataKey();
  const dek = newDataKey();
  const blob = blobIdToHex(newBlobId());

  it('wraps and unwraps a DEK; fresh nonce every time', () => {
    const r1 = wrapDataKey(kek, dek, blob);
    const r2 = wrapDataKey(kek, dek, blob);
    expect(Object.keys(r1).sort()).toEqual(['context', 'kekId', 'nonce', 'scheme', 'version', 'wrapped']);
    expect(r1).toMatchObject({ scheme: 'keyfile', version: 1, kekId: kekIdOf(kek), context: { 'coffer:blob': blob } });
    expect(r1.nonce).not.toBe(r2.nonce);
    expect(unwrapDataKey(kek, r1, blob)).toEqual(dek);
    // survives a JSON round trip, as it does in the metadata store
    expect(unwrapDataKey(kek, JSON.parse(JSON.stringify(r2)), blob)).toEqual(dek);
  });

  it('dataKeyWrapper (many keys under one KEK) makes the records wrapDataKey makes; a wrong-size KEK is refused', () => {
    const wrapOne = dataKeyWrapper(kek);
    const r1 = wrapOne(dek, blob);
    const r2 = wrapOne(dek, blob);
    expect(r1).toMatchObject({ scheme: 'keyfile', version: 1, kekId: kekIdOf(kek), context: { 'coffer:blob': blob } });
    expect(Object.keys(r1).sort()).toEqual(Object.keys(wrapDataKey(kek, dek, blob)).sort());
    expect(r1.nonce).not.toBe(r2.nonce);
    expect(unwrapDataKey(kek, r1, blob)).toEqual(dek);
    expect(() => unwrapDataKey(newDataKey(), r1, blob)).toThrow();
    throwsCode(() => dataKeyWrapper(new Uint8Array(31)), 'KEY_INVALID');
  });

  it('dataKeyUnwrapper (many keys under one KEK) opens what unwrapDataKey opens and refuses what it refuses', () => {
    const open = dataKeyUnwrapper(kek);
    const r = wrapDataKey(kek, dek, blob);
    expect(open(r, blob)).toEqual(dek);
    const other = blobIdToHex(newBlobId());
    throwsCode(() => open(r, other), 'KEY_INVALID'); // moved
    throwsCode(() => open({ ...r, context: { 'coffer:blob': other } }, other), 'KEY_INVALID');
    throwsCode(() => dataKeyUnwrapper(newDataKey())(r, blob), 'KEY_INVALID'); // another key file (kekId)
    const otherKek = newDataKey();
    throwsCode(() => dataKeyUnwrapper(otherKek)({ ...r, kekId: kekIdOf(otherKek) }, blob), 'KEY_INVALID'); // forged kekId: the tag
    const wrapped = Buffer.from(r.wrapped, 'base64');
    wrapped[0] = (wrapped[0] ?? 0) ^ 1;
    throwsCode(() => open({ ...r, wrapped: wrapped.toString('base64') }, blob), 'KEY_INVALID');
    throwsCode(() => dataKeyUnwrapper(new Uint8Array(31)), 'KEY_INVALID');
  });

  it('a record moved to another blob fails, even with its context edited to match', () => {
    const r = wrapDataKey(kek, dek, blob);
    const other = blobIdToHex(newBlobId());
    throwsCode(() => unwrapDataKey(kek, r, other), 'KEY_INVALID');
    throwsCode(() => unwrapDataKey(kek, { ...r, context: { 'coffer:blob': other } }, other), 'KEY_INVALID');
  });

  it('another key file fails (kekId), and so does a forged kekId (tag)', () => {
    const r = wrapDataKey(kek, dek, blob);
    const otherKek = newDataKey();
    throwsCode(() => unwrapDataKey(otherKek, r, blob), 'KEY_INVALID');
    throwsCode(() => unwrapDataKey(otherKek, { ...r, kekId: kekIdOf(otherKek) }, blob), 'KEY_INVALID');
  });

  it('any edit of nonce or wrapped bytes fails', () => {
    const r = wrapDataKey(kek, dek, blob);
    for (const field of ['nonce', 'wrapped'] as const) {
      const raw = Buffer.from(r[field], 'base64');
      for (let i = 0; i < raw.length; i++) {
        const edited = Buffer.from(raw);
        edited[i] = (edited[i] ?? 0) ^ 0x01;
        throwsCode(() => unwrapDataKey(kek, { ...r, [field]: edited.toString('base64') }, blob), 'KEY_INVALID');
      }
    }
  });

  it.each<[string, (r: KeyRecord) => unknown]>([
    ['unknown field', (r) => ({ ...r, extra: 1 })],
    ['missing field', (r) => { const { kekId: _k, ...rest } = r; return rest; }],
    ['other scheme', (r) => ({ ...r, scheme: 'kms' })],
    ['version 2', (r) => ({ ...r, version: 2 })],
    ['version as string', (r) => ({ ...r, version: '1' })],
    ['uppercase kekId', (r) => ({ ...r, kekId: r.kekId.toUpperCase() })],
    ['non-canonical base64', (r) => ({ ...r, nonce: `${r.nonce}\n` })],
    ['url-safe base64', (r) => ({ ...r, wrapped: r.wrapped.replace(/\+/g, '-').replace(/\//g, '_') + (/[+/]/.test(r.wrapped) ? '' : '!') })],
    ['short wrapped', (r) => ({ ...r, wrapped: Buffer.from(r.wrapped, 'base64').subarray(0, 47).toString('base64') })],
    ['extra context key', (r) => ({ ...r, context: { ...r.context, 'coffer:x': 'y' } })],
    ['uppercase blob in context', (r) => ({ ...r, context: { 'coffer:blob': r.context['coffer:blob'].toUpperCase() } })],
    ['array', () => []],
    ['null', () => null],
    ['string', (r) => JSON.stringify(r)],
  ])('rejects a record with %s (KEY_INVALID)', (_name, mutate) => {
    const r = wrapDataKey(kek, dek, blob);
    throwsCode(() => parseKeyRecord(mutate(r)), 'KEY_INVALID');
    throwsCode(() => unwrapDataKey(kek, mutate(r), blob), 'KEY_INVALID');
  });

  it('checks key sizes and the blob id spelling', () => {
    throwsCode(() => wrapDataKey(new Uint8Array(16), dek, blob), 'KEY_INVALID');
    throwsCode(() => wrapDataKey(kek, new Uint8Array(31), blob), 'KEY_INVALID');
    throwsCode(() => wrapDataKey(kek, dek, blob.toUpperCase()), 'INVALID_ARGUMENT');
    throwsCode(() => unwrapDataKey(kek, wrapDataKey(kek, dek, blob), blob.slice(1)), 'INVALID_ARGUMENT');
  });
});
