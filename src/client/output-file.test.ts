import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { alignedAllocator } from '../buffer-pool.js';
import { OutputFile } from './output-file.js';

const MiB = 1024 * 1024;

describe('OutputFile', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'coffer-out-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes aligned pieces with O_DIRECT in any order, pads the last block and cuts the padding off', async () => {
    const make = alignedAllocator(MiB, 2);
    const a = make();
    const b = make();
    const first = randomBytes(MiB);
    const last = randomBytes(1000);
    first.copy(a);
    last.copy(b);
    b.fill(0xff, 1000); // garbage after the last piece must not reach the file
    const out = await OutputFile.create(join(dir, 'f'));
    expect(out.isDirect).toBe(true); // the project's machines: ext4 and tmpfs both take O_DIRECT
    await out.write(b.subarray(0, 1000), MiB);
    await out.write(a, 0);
    await out.finish(MiB + 1000);
    await out.close();
    expect(out.isDirect).toBe(true);
    expect((await readFile(join(dir, 'f'))).equals(Buffer.concat([first, last]))).toBe(true);
  });

  it('falls back to ordinary writes for good when O_DIRECT refuses a buffer', async () => {
    const out = await OutputFile.create(join(dir, 'g'));
    const data = randomBytes(10_000);
    const unaligned = Buffer.alloc(20_000).subarray(3, 3 + data.length);
    data.copy(unaligned);
    await out.write(unaligned, 0);
    expect(out.isDirect).toBe(false);
    await out.write(data.subarray(0, 5), 10_000);
    await out.finish(10_005);
    await out.close();
    expect((await readFile(join(dir, 'g'))).equals(Buffer.concat([data, data.subarray(0, 5)]))).toBe(true);
  });

  it('refuses to replace an existing file', async () => {
    const out = await OutputFile.create(join(dir, 'h'));
    await out.close();
    await expect(OutputFile.create(join(dir, 'h'))).rejects.toMatchObject({ code: 'EEXIST' });
  });
});
