// PCR0 measurement of an enclave bundle, checked against the documented shell one-liner and Python recipe.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { measureEnclaveBundle } from './measure.js';

/** The shell recipe from docs/attestation.md, verbatim. */
const SHELL_RECIPE = `cd "$1" && find . -type f -printf '%P\\n' | LC_ALL=C sort | while IFS= read -r f; do printf '%s\\0%s\\0%s\\n' "$f" "$(stat -c %s -- "$f")" "$(sha384sum < "$f" | cut -d' ' -f1)"; done | sha384sum | cut -d' ' -f1`;
const PY_RECIPE = fileURLToPath(new URL('./testdata/pcr0.py', import.meta.url));

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function bundle(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'coffer-bundle-'));
  dirs.push(d);
  await mkdir(join(d, 'lib', 'deep'), { recursive: true });
  await writeFile(join(d, 'main.js'), 'import "./lib/a.js";\n');
  await writeFile(join(d, 'lib', 'a.js'), 'export const a = 1;\n');
  await writeFile(join(d, 'lib', 'deep', 'Ünïcode name.txt'), Buffer.alloc(70_000, 0xab));
  await writeFile(join(d, 'lib', 'B.js'), '');
  await writeFile(join(d, '.hidden'), 'x');
  await writeFile(join(d, 'lib-z'), 'sorted by bytes: "lib-z" < "lib/" since "-" < "/"');
  return d;
}

describe('measureEnclaveBundle', () => {
  it('matches the documented shell one-liner and Python recipe', async () => {
    const d = await bundle();
    const m = await measureEnclaveBundle(d);
    expect(m.files).toBe(6);
    expect(m.pcr0).toMatch(/^[0-9a-f]{96}$/);
    expect(m.listing.split('\n')[0]?.split('\0')[0]).toBe('.hidden');
    expect(execFileSync('bash', ['-c', SHELL_RECIPE, 'recipe', d], { encoding: 'utf8' }).trim()).toBe(m.pcr0);
    expect(execFileSync('python3', [PY_RECIPE, d], { encoding: 'utf8' }).trim()).toBe(m.pcr0);
  });

  it('changes with any content byte or any file name, and is stable otherwise', async () => {
    const d = await bundle();
    const first = (await measureEnclaveBundle(d)).pcr0;
    expect((await measureEnclaveBundle(d)).pcr0).toBe(first);
    await writeFile(join(d, 'lib', 'a.js'), 'export const a = 2;\n');
    const second = (await measureEnclaveBundle(d)).pcr0;
    expect(second).not.toBe(first);
    await rename(join(d, 'lib', 'B.js'), join(d, 'lib', 'C.js'));
    expect((await measureEnclaveBundle(d)).pcr0).not.toBe(second);
  });

  it('refuses symlinks, names with newlines, empty bundles and missing directories', async () => {
    const d = await bundle();
    await symlink('/etc/passwd', join(d, 'link'));
    await expect(measureEnclaveBundle(d)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    const n = await bundle();
    await writeFile(join(n, 'a\nb'), 'x');
    await expect(measureEnclaveBundle(n)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    const e = await mkdtemp(join(tmpdir(), 'coffer-bundle-'));
    dirs.push(e);
    await expect(measureEnclaveBundle(e)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(measureEnclaveBundle(join(e, 'nope'))).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(measureEnclaveBundle(join(d, 'main.js'))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});
