// NitroNsmProvider with real helper processes: a helper backed by the simulated NSM runs the shared provider
// contract end to end; a helper returning a real AWS document checks the binding and decoding; failing,
// hanging, garbage-spewing and missing helpers give typed errors.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeAttestationDocument, verifyAttestation } from '../../src/attestation/index.js';
import { NITRO_FIXTURE_DIR, atDocumentTime, fixture, hex } from '../../src/attestation/nitro-fixtures.test-util.js';
import { ensureDevRoot } from './dev-root.js';
import { NitroNsmProvider } from './nitro-nsm.js';
import { runAttestationProviderContract } from './provider.case.js';

const SIM_HELPER = fileURLToPath(new URL('./testdata/sim-nsm-helper.ts', import.meta.url));
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

runAttestationProviderContract('NitroNsmProvider (helper process backed by the simulated NSM)', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'coffer-nitro-'));
  dirs.push(dataDir);
  const root = await ensureDevRoot(dataDir); // created up front so concurrent helpers share it
  return {
    provider: new NitroNsmProvider({
      command: process.execPath,
      args: ['--import', 'tsx', SIM_HELPER],
      timeoutMs: 30_000,
      trustRoot: root.trustRoot,
      env: { ...process.env, COFFER_SIM_DATA_DIR: dataDir, COFFER_SIM_PCR0: 'ef'.repeat(48) },
    }),
    foreignRoot: { kind: 'aws' },
  };
});

/** A helper that ignores the request and prints a fixed file, as a stand-in NSM. */
function catHelper(file: string, extra: Partial<ConstructorParameters<typeof NitroNsmProvider>[0]> = {}): NitroNsmProvider {
  return new NitroNsmProvider({ command: '/bin/sh', args: ['-c', 'cat > /dev/null; cat "$1"', 'helper', file], ...extra });
}
function shHelper(script: string, timeoutMs = 5_000): NitroNsmProvider {
  return new NitroNsmProvider({ command: '/bin/sh', args: ['-c', script], timeoutMs });
}

describe('NitroNsmProvider with a helper returning a real AWS document', () => {
  const f = fixture('base-nitro-validator.cbor');
  const doc = decodeAttestationDocument(f.bytes);
  const provider = catHelper(join(NITRO_FIXTURE_DIR, f.name));

  it('returns the document, which verifies under the AWS root with its PCR0', async () => {
    expect(provider.trustRoot).toEqual({ kind: 'aws' });
    const bytes = await provider.attest({ publicKey: doc.publicKey as Uint8Array });
    expect(hex(bytes)).toBe(hex(f.bytes));
    verifyAttestation(bytes, { root: provider.trustRoot, now: atDocumentTime(f), pcrPolicy: { pcrs: { 0: hex(doc.pcrs.get(0) as Uint8Array) } } });
  });

  it('refuses a document that does not bind the requested fields', async () => {
    await expect(provider.attest({ publicKey: new Uint8Array(65) })).rejects.toMatchObject({ code: 'ATTESTATION_INVALID' });
    await expect(provider.attest({ publicKey: doc.publicKey as Uint8Array, nonce: new Uint8Array([1]) })).rejects.toMatchObject({ code: 'ATTESTATION_INVALID' });
    await expect(provider.attest({})).rejects.toMatchObject({ code: 'ATTESTATION_INVALID' });
  });
});

describe('NitroNsmProvider with a broken helper', () => {
  it('a failing helper → UNAVAILABLE (retryable) with its stderr line', async () => {
    const err = await shHelper('echo "open /dev/nsm: No such file or directory" >&2; exit 3').attest({}).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'UNAVAILABLE', retryable: true });
    expect((err as Error).message).toContain('/dev/nsm');
  });
  it('a hanging helper → TIMEOUT, and its process group is killed', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'coffer-hang-'));
    dirs.push(dir);
    const marker = join(dir, 'still-alive');
    const started = Date.now();
    const err = await shHelper(`sleep 3; touch ${marker}`, 300).attest({}).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'TIMEOUT', retryable: true });
    expect(Date.now() - started).toBeLessThan(2500);
    await new Promise((r) => setTimeout(r, 3500));
    await expect(import('node:fs/promises').then((fs) => fs.stat(marker))).rejects.toMatchObject({ code: 'ENOENT' });
  });
  it('garbage or oversized output → ATTESTATION_FORMAT', async () => {
    await expect(shHelper('head -c 300 /dev/urandom').attest({})).rejects.toMatchObject({ code: 'ATTESTATION_FORMAT' });
    await expect(shHelper('printf ""').attest({})).rejects.toMatchObject({ code: 'ATTESTATION_FORMAT' });
    await expect(shHelper('head -c 100000 /dev/zero').attest({})).rejects.toMatchObject({ code: 'ATTESTATION_FORMAT' });
  });
  it('a helper that cannot be started → UNAVAILABLE; no command → INVALID_ARGUMENT', async () => {
    await expect(new NitroNsmProvider({ command: '/nonexistent/nsm-helper' }).attest({})).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(() => new NitroNsmProvider({ command: '' })).toThrow(/required/);
  });
  it('hands the request to the helper as one JSON line', async () => {
    const p = shHelper('cat >&2; exit 1');
    const err = await p.attest({ nonce: new Uint8Array([1, 2, 3]) }).catch((e: unknown) => e);
    expect((err as Error).message).toContain('{"v":1,"public_key":null,"user_data":null,"nonce":"AQID"}');
  });
});
