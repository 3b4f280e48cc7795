// get -r's placement on worker threads (place-workers.ts): the same files, times, errors and clean-up as
// placeFileNow on the calling thread; the plaintext moved to the worker (or copied there and zeroed here).
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../errors.js';
import { partialPath } from './partial-files.js';
import { PlaceWorkers } from './place-workers.js';

let dir: string;
const placer = new PlaceWorkers(2);
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'coffer-place-workers-'));
});
afterAll(async () => {
  await placer.close();
  await rm(dir, { recursive: true, force: true });
});

const partials = async (d: string): Promise<string[]> => (await readdir(d)).filter((n) => n.startsWith('.coffer-partial-'));
const place = (dest: string, bytes: Buffer, overwrite = false, mtime?: Date): Promise<void> =>
  placer.place(partialPath(path.dirname(dest)), dest, bytes, { overwrite, mtime });

describe('PlaceWorkers (get -r without fsync)', () => {
  it('places many files at once with their bytes and times; the plaintext is moved out, no temporary file stays', async () => {
    const mtime = new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 678));
    const bodies = Array.from({ length: 50 }, (_, i) => Buffer.alloc(16384 + i, i + 1));
    const given = bodies.map((b) => {
      const own = Buffer.allocUnsafeSlow(b.length); // its own ArrayBuffer, as openFileAnswer makes: moved to the workers
      b.copy(own);
      return own;
    });
    await Promise.all(given.map((b, i) => place(path.join(dir, `f${i}`), b, false, mtime)));
    for (const [i, b] of bodies.entries()) {
      expect((await readFile(path.join(dir, `f${i}`))).equals(b)).toBe(true);
      const st = await stat(path.join(dir, `f${i}`));
      expect([st.mtimeMs, st.mode & 0o777]).toEqual([mtime.getTime(), 0o600]);
      expect(given[i]!.byteLength).toBe(0); // detached: the worker zeroed its copy
    }
    expect(await partials(dir)).toEqual([]);
  });

  it('copies a view of a larger buffer and zeroes it, leaving the rest of that buffer alone', async () => {
    const whole = Buffer.alloc(64, 7);
    const view = whole.subarray(8, 24);
    await place(path.join(dir, 'view.bin'), view);
    expect(await readFile(path.join(dir, 'view.bin'))).toEqual(Buffer.alloc(16, 7));
    expect([whole[7], whole[8], whole[23], whole[24]]).toEqual([7, 0, 0, 7]);
  });

  it('refuses an existing name without overwrite, replaces it with; errors as placeFileNow, nothing left behind', async () => {
    const dest = path.join(dir, 'mine.bin');
    await writeFile(dest, 'mine');
    await expect(place(dest, Buffer.from('theirs'))).rejects.toMatchObject({ code: ErrorCode.ALREADY_EXISTS });
    expect(await readFile(dest, 'utf8')).toBe('mine');
    await place(dest, Buffer.from('new'), true);
    expect(await readFile(dest, 'utf8')).toBe('new');
    await expect(place(path.join(dir, 'no-such-dir', 'x'), Buffer.from('x'))).rejects.toMatchObject({ code: ErrorCode.NOT_FOUND });
    await expect(place(path.join(dir, 'mine.bin', 'x'), Buffer.from('x'))).rejects.toMatchObject({ code: ErrorCode.NOT_FOUND });
    expect(await partials(dir)).toEqual([]);
  });

  it('refuses work once closed', async () => {
    const other = new PlaceWorkers(1);
    await other.place(partialPath(dir), path.join(dir, 'once.bin'), Buffer.from('x'), { overwrite: false });
    await other.close();
    await expect(other.place(partialPath(dir), path.join(dir, 'twice.bin'), Buffer.from('x'), { overwrite: false })).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
  });
});
