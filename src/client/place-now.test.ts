import { mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../errors.js';
import { placeFileNow } from './place-now.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'coffer-place-now-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

const partials = async (d: string): Promise<string[]> => (await readdir(d)).filter((n) => n.startsWith('.coffer-partial-'));

describe('placeFileNow (get -r without fsync)', () => {
  it('writes the bytes and the modification time under the name, leaving no temporary file', async () => {
    const dest = path.join(dir, 'a.bin');
    const bytes = Buffer.from('hello, vault');
    const mtime = new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 678));
    placeFileNow(dest, bytes, { overwrite: false, mtime });
    expect(await readFile(dest)).toEqual(bytes);
    expect((await stat(dest)).mtimeMs).toBe(mtime.getTime());
    expect((await stat(dest)).mode & 0o777).toBe(0o600);
    expect(await partials(dir)).toEqual([]);
  });

  it('refuses an existing name without overwrite, keeping it untouched and leaving no temporary file', async () => {
    const dest = path.join(dir, 'b.bin');
    await writeFile(dest, 'mine');
    expect(() => placeFileNow(dest, Buffer.from('theirs'), { overwrite: false })).toThrow(expect.objectContaining({ code: ErrorCode.ALREADY_EXISTS }));
    expect(await readFile(dest, 'utf8')).toBe('mine');
    expect(await partials(dir)).toEqual([]);
  });

  it('never writes through a symbolic link at the name (without overwrite: refused; with: the link is replaced)', async () => {
    const target = path.join(dir, 'target.txt');
    await writeFile(target, 'target');
    const dest = path.join(dir, 'link.bin');
    await symlink(target, dest);
    expect(() => placeFileNow(dest, Buffer.from('x'), { overwrite: false })).toThrow(expect.objectContaining({ code: ErrorCode.ALREADY_EXISTS }));
    placeFileNow(dest, Buffer.from('new'), { overwrite: true });
    expect(await readFile(target, 'utf8')).toBe('target');
    expect(await readFile(dest, 'utf8')).toBe('new');
    expect((await stat(dest)).isFile()).toBe(true);
    expect(await partials(dir)).toEqual([]);
  });

  it('replaces an existing file with overwrite', async () => {
    const dest = path.join(dir, 'c.bin');
    await writeFile(dest, 'old contents');
    placeFileNow(dest, Buffer.from('new'), { overwrite: true });
    expect(await readFile(dest, 'utf8')).toBe('new');
    expect(await partials(dir)).toEqual([]);
  });

  it('writes an empty file', async () => {
    const dest = path.join(dir, 'empty.bin');
    placeFileNow(dest, Buffer.alloc(0), { overwrite: false });
    expect((await stat(dest)).size).toBe(0);
  });

  it('says NOT_FOUND for a missing directory', () => {
    expect(() => placeFileNow(path.join(dir, 'no-such-dir', 'x'), Buffer.from('x'), { overwrite: false })).toThrow(expect.objectContaining({ code: ErrorCode.NOT_FOUND }));
  });
});
