// The enclave code bundle: the one well-defined set of files whose measurement is the enclave's PCR0 in
// development, and what the development key policy admits (docs/enclave-gateway.md, "The code bundle").
//
// The bundle is the source the enclave process is built from, taken from the repository (or the installed
// package) root, never from dist/: `npm run build` compiles exactly these files with the pinned compiler, so the
// same commit measures the same on every machine, whether Coffer runs compiled or from source:
//   - every file under enclave/, src/ and storage-backend/ except tests (*.test.ts, *.case.ts, *.test-util.ts,
//     testdata/, test-env.ts, test-server.ts) — the enclave runs the `coffer` program (src/cli) with these;
//     bench/ is left out: `coffer enclave run` never loads it;
//   - migrations/ (same rule), bin/coffer.mjs (the entry point), tsconfig.json and tsconfig.build.json (how it is
//     compiled), package-lock.json (every dependency's exact version and integrity hash).
// The listing and the hash follow measure.ts's recipe (path NUL size NUL sha384 LF, sorted by UTF-8 bytes, then
// SHA-384), with paths relative to the root, so `sha384sum` and a few lines of shell recompute it.
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { measureFiles, type BundleMeasurement } from '../attestation/measure.js';
import { CofferError, ErrorCode } from '../../src/errors.js';

const DIRS = ['enclave', 'src', 'storage-backend', 'migrations'];
const FILES = ['bin/coffer.mjs', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json'];
const EXCLUDED = /(\.test\.ts|\.case\.ts|\.test-util\.ts|(^|\/)testdata\/.*|(^|\/)test-env\.ts|(^|\/)test-server\.ts)$/;

/** The root holding enclave/, src/ and package-lock.json: this file's checkout or installed package. */
export function codeRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'package-lock.json')) && existsSync(path.join(dir, 'enclave')) && existsSync(path.join(dir, 'src'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new CofferError(ErrorCode.NOT_FOUND, 'cannot find the Coffer source tree (enclave/, src/, package-lock.json) above the running code');
    dir = up;
  }
}

async function walk(root: string, rel: string, out: string[]): Promise<void> {
  for (const e of await readdir(path.join(root, rel), { withFileTypes: true })) {
    const p = `${rel}/${e.name}`;
    if (e.isDirectory()) await walk(root, p, out);
    else if (e.isFile() && !EXCLUDED.test(p)) out.push(p);
  }
}

/** The bundle's files, relative to `root` with POSIX separators. */
export async function enclaveBundleFiles(root: string = codeRoot()): Promise<string[]> {
  const files: string[] = [];
  for (const d of DIRS) await walk(root, d, files);
  for (const f of FILES) if (existsSync(path.join(root, f))) files.push(f);
  return files;
}

/** PCR0 (and the simulated PCR1/PCR2) of the enclave code bundle. Throws NOT_FOUND when there is no source tree. */
export async function measureEnclaveCode(root: string = codeRoot()): Promise<BundleMeasurement & { root: string }> {
  const m = await measureFiles(root, await enclaveBundleFiles(root));
  return { ...m, root };
}
