// bench/page-cache.ts, which `coffer bench files` relies on for its cold runs: files read into the page cache are
// gone from it after the eviction (where fincore can tell), and a run that could not verify or achieve the
// eviction says so in its line instead of passing for cold.
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeEvictions, evictFromPageCache, isCold } from '../../bench/page-cache.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'coffer-page-cache-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

describe('bench page-cache eviction', () => {
  it('evicts every file under the roots (nested, missing roots skipped) and counts them', async () => {
    await mkdir(path.join(dir, 'a', 'b'), { recursive: true });
    const files = [path.join(dir, 'a', 'one'), path.join(dir, 'a', 'b', 'two')];
    for (const f of files) {
      await writeFile(f, randomBytes(256 * 1024));
      readFileSync(f); // into the page cache
    }
    const e = evictFromPageCache([path.join(dir, 'a'), path.join(dir, 'missing')]);
    expect(e.files).toBe(2);
    expect(e.evicted).toBe(true);
    if (e.resident !== null) {
      // fincore present: it saw both files, and (on a filesystem that honours the advice) nothing left
      expect(e.bytes).toBe(2 * 256 * 1024);
      expect(describeEvictions([e])).toMatch(isCold(e) ? /^page cache: evicted 1 times .* at most 0\.0 MiB resident/ : /EVICTION DID NOT WORK/);
    }
  });

  it('says when the eviction failed or could not be verified, never "evicted" alone', () => {
    const ok = { files: 3, bytes: 1000, evicted: true, resident: 0 };
    expect(isCold(ok)).toBe(true);
    expect(describeEvictions([ok, { ...ok, resident: 500 }])).toMatch(/^page cache: EVICTION DID NOT WORK: up to 0\.0 MiB of 0\.0 MiB still resident/);
    expect(describeEvictions([ok, { ...ok, evicted: false }])).toMatch(/^page cache: EVICTION FAILED/);
    expect(describeEvictions([ok, { ...ok, resident: null }])).toMatch(/NOT VERIFIED \(fincore from util-linux missing\)/);
    expect(isCold({ ...ok, resident: null })).toBe(false);
    expect(describeEvictions([])).toBe('page cache: nothing evicted');
  });
});
