// `coffer attestation verify|measure` driven through commander exactly as the CLI main would run it.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SimulatedNsm, measureEnclaveBundle } from '../../../enclave/attestation/index.js';
import { AWS_NITRO_ROOT_G1_SHA256, decodeAttestationDocument } from '../../attestation/index.js';
import { NITRO_FIXTURE_DIR, atDocumentTime, fixture, hex } from '../../attestation/nitro-fixtures.test-util.js';
import { register } from './attestation.js';

async function run(...args: string[]): Promise<string> {
  const program = new Command().exitOverride().configureOutput({ writeOut: () => {}, writeErr: () => {} });
  register(program);
  const out: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out.push(String(chunk));
    return true;
  });
  try {
    await program.parseAsync(['node', 'coffer', ...args]);
  } finally {
    spy.mockRestore();
  }
  return out.join('');
}

const base = fixture('base-nitro-validator.cbor');
const beta = fixture('evervault-beta-valid.cbor');
const baseFile = join(NITRO_FIXTURE_DIR, base.name);
const betaFile = join(NITRO_FIXTURE_DIR, beta.name);
const pcr0 = (f: typeof base): string => hex(decodeAttestationDocument(f.bytes).pcrs.get(0) as Uint8Array);

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'coffer-cli-att-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('coffer attestation verify (AWS documents)', () => {
  it('prints the verified fields as JSON', async () => {
    const out = JSON.parse(await run('attestation', 'verify', baseFile, '--root', 'aws', '--at', atDocumentTime(base).toISOString(), '--pcr', `0=${pcr0(base)}`, '--json'));
    expect(out).toMatchObject({ verified: true, timestamp: base.timestamp, digest: 'SHA384', user_data: null, nonce: null, root: { kind: 'aws', sha256: AWS_NITRO_ROOT_G1_SHA256 } });
    expect(out.module_id).toBe('i-0de38b2b6853cc9e8-enc0193685e7fee7d85');
    expect(out.pcrs['0']).toBe(pcr0(base));
    expect(out.public_key).toHaveLength(130);
    expect(out.certificate_subject).toContain('CN=i-0de38b2b6853cc9e8-enc0193685e7fee7d85.us-east-1.aws');
    // human output too
    expect(await run('attestation', 'verify', baseFile, '--root', 'aws', '--at', atDocumentTime(base).toISOString(), '--pcr', `0=${pcr0(base)}`)).toMatch(/^verified: /);
  });

  it('checks nonce and max age', async () => {
    const nonce = hex(decodeAttestationDocument(beta.bytes).nonce as Uint8Array);
    const late = atDocumentTime(beta, 10 * 60_000).toISOString();
    const out = JSON.parse(await run('attestation', 'verify', betaFile, '--root', 'aws', '--at', late, '--max-age', '900', '--nonce', nonce, '--pcr', `0=${pcr0(beta)}`, '--json'));
    expect(out.nonce).toBe(nonce);
    await expect(run('attestation', 'verify', betaFile, '--root', 'aws', '--at', late, '--pcr', `0=${pcr0(beta)}`)).rejects.toMatchObject({ code: 'ATTESTATION_INVALID' });
    await expect(run('attestation', 'verify', betaFile, '--root', 'aws', '--at', atDocumentTime(beta).toISOString(), '--nonce', 'ab', '--pcr', `0=${pcr0(beta)}`)).rejects.toMatchObject({ code: 'ATTESTATION_INVALID' });
  });

  it('refuses with a typed error: wrong PCR, no PCR, expired, dev root, bad flags', async () => {
    const at = atDocumentTime(base).toISOString();
    await expect(run('attestation', 'verify', baseFile, '--root', 'aws', '--at', at, '--pcr', `0=${'ab'.repeat(48)}`)).rejects.toMatchObject({ code: 'ATTESTATION_POLICY' });
    await expect(run('attestation', 'verify', baseFile, '--root', 'aws', '--at', at)).rejects.toMatchObject({ code: 'ATTESTATION_POLICY' });
    await expect(run('attestation', 'verify', baseFile, '--root', 'aws', '--at', '2024-12-01T00:00:00Z', '--max-age', '99999', '--pcr', `0=${pcr0(base)}`)).rejects.toMatchObject({ code: 'ATTESTATION_INVALID' });
    await expect(run('attestation', 'verify', baseFile, '--root', 'aws', '--at', at, '--pcr', '0=abc')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(run('attestation', 'verify', baseFile, '--root', 'aws', '--at', 'yesterday', '--pcr', `0=${pcr0(base)}`)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    // a time Date would parse in the machine's own zone is not a time every verifier agrees on
    for (const loose of ['Nov 30 2024 16:23 GMT', '2024-11-30 16:23:00', '2024-11-30T16:23:00']) {
      await expect(run('attestation', 'verify', baseFile, '--root', 'aws', '--at', loose, '--pcr', `0=${pcr0(base)}`)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    }
    await expect(run('attestation', 'verify', baseFile, '--root', 'aws', '--dev-root-cert', baseFile, '--pcr', `0=${pcr0(base)}`)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(run('attestation', 'verify', join(work, 'missing.cbor'), '--root', 'aws', '--pcr', `0=${pcr0(base)}`)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(run('attestation', 'verify', baseFile, '--pcr', `0=${pcr0(base)}`)).rejects.toMatchObject({ code: 'commander.missingMandatoryOptionValue' });
    await expect(run('attestation', 'verify', baseFile, '--root', 'both', '--pcr', `0=${pcr0(base)}`)).rejects.toMatchObject({ code: 'commander.invalidArgument' });
    // an AWS document under a dev root: no dev root in this data dir → NOT_FOUND
    await expect(run('attestation', 'verify', baseFile, '--root', 'dev', '--data-dir', join(work, 'empty'), '--at', at, '--pcr', `0=${pcr0(base)}`)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});

describe('coffer attestation verify (development documents)', () => {
  it('verifies a simulated document with --data-dir or --dev-root-cert, never with --root aws', async () => {
    const dataDir = join(work, 'data');
    const nsm = await SimulatedNsm.create({ dataDir, pcrs: { 0: '5a'.repeat(48) } });
    const file = join(work, 'dev.cbor');
    await writeFile(file, await nsm.attest({ userData: new TextEncoder().encode('hi') }));
    const viaDir = JSON.parse(await run('attestation', 'verify', file, '--root', 'dev', '--data-dir', dataDir, '--pcr', `0=${'5a'.repeat(48)}`, '--json'));
    expect(viaDir).toMatchObject({ user_data: '6869', root: { kind: 'dev', sha256: nsm.devRoot.rootFingerprint } });
    const pem = join(work, 'root.pem');
    await writeFile(pem, nsm.devRoot.rootCertPem);
    await run('attestation', 'verify', file, '--root', 'dev', '--dev-root-cert', pem, '--pcr', `0=${'5a'.repeat(48)}`, '--json');
    await expect(run('attestation', 'verify', file, '--root', 'aws', '--pcr', `0=${'5a'.repeat(48)}`)).rejects.toMatchObject({ code: 'ATTESTATION_INVALID' });
    // an AWS document under this dev root
    await expect(run('attestation', 'verify', baseFile, '--root', 'dev', '--dev-root-cert', pem, '--at', atDocumentTime(base).toISOString(), '--pcr', `0=${pcr0(base)}`)).rejects.toMatchObject({ code: 'ATTESTATION_INVALID' });
  });
});

describe('coffer attestation measure', () => {
  it('prints the PCR0 of a bundle', async () => {
    const bundle = join(work, 'bundle');
    await import('node:fs/promises').then((fs) => fs.mkdir(bundle, { recursive: true }));
    await writeFile(join(bundle, 'main.js'), 'hello');
    const expected = (await measureEnclaveBundle(bundle)).pcr0;
    expect((await run('attestation', 'measure', bundle)).trim()).toBe(expected);
    expect(JSON.parse(await run('attestation', 'measure', bundle, '--json'))).toMatchObject({ pcr0: expected, files: 1 });
  });
});
