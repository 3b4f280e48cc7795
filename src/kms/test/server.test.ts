// The embedded KMS through the real @aws-sdk/client-kms over HTTP on loopback: key management, data keys,
// encryption context binding, rotation, ReEncrypt, policies, SigV4 rejection and fail-closed validation.
import { request } from 'node:http';
import {
  CreateAliasCommand, CreateKeyCommand, DecryptCommand, DescribeKeyCommand, DisableKeyCommand, EnableKeyRotationCommand, EncryptCommand,
  GenerateDataKeyCommand, GenerateDataKeyWithoutPlaintextCommand, GetKeyPolicyCommand, GetKeyRotationStatusCommand, KMSClient, ListAliasesCommand,
  ListKeysCommand, PutKeyPolicyCommand, ReEncryptCommand, RotateKeyOnDemandCommand,
} from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKmsServer } from '../server/index.js';
import { ALICE_ARN, BOB_ARN, startHarness, type Harness } from './harness.js';

let h: Harness;
let alice: KMSClient;
let bob: KMSClient;
const ctx = { 'coffer:blob': '00112233445566778899aabbccddeeff' };

beforeAll(async () => {
  h = await startHarness();
  alice = h.client(h.alice);
  bob = h.client(h.bob);
});
afterAll(() => h.close());

async function errorOf(p: Promise<unknown>): Promise<{ name: string; message: string; status?: number }> {
  try {
    await p;
  } catch (e) {
    const err = e as { name: string; message: string; $metadata?: { httpStatusCode?: number } };
    return { name: err.name, message: err.message, status: err.$metadata?.httpStatusCode };
  }
  throw new Error('expected the call to fail');
}

describe('embedded KMS via @aws-sdk/client-kms', () => {
  it('creates keys, aliases; describes and lists them', async () => {
    const { KeyMetadata: md } = await alice.send(new CreateKeyCommand({ Description: 'vault key' }));
    expect(md?.KeyId).toMatch(/^[0-9a-f-]{36}$/);
    expect(md?.Arn).toBe(`arn:aws:kms:us-east-1:000000000000:key/${md?.KeyId}`);
    expect(md?.KeyState).toBe('Enabled');
    expect(md?.CreationDate).toBeInstanceOf(Date);
    await alice.send(new CreateAliasCommand({ AliasName: 'alias/vault', TargetKeyId: md?.KeyId }));
    const byAlias = await alice.send(new DescribeKeyCommand({ KeyId: 'alias/vault' }));
    expect(byAlias.KeyMetadata?.KeyId).toBe(md?.KeyId);
    const byAliasArn = await alice.send(new DescribeKeyCommand({ KeyId: 'arn:aws:kms:us-east-1:000000000000:alias/vault' }));
    expect(byAliasArn.KeyMetadata?.Description).toBe('vault key');
    const keys = await alice.send(new ListKeysCommand({}));
    expect(keys.Keys?.map((k) => k.KeyId)).toContain(md?.KeyId);
    const aliases = await alice.send(new ListAliasesCommand({ KeyId: md?.KeyId }));
    expect(aliases.Aliases?.map((a) => a.AliasName)).toEqual(['alias/vault']);
    expect((await errorOf(alice.send(new CreateAliasCommand({ AliasName: 'alias/vault', TargetKeyId: md?.KeyId })))).name).toBe('AlreadyExistsException');
    expect((await errorOf(alice.send(new CreateAliasCommand({ AliasName: 'alias/aws/x', TargetKeyId: md?.KeyId })))).name).toBe('InvalidAliasNameException');
    expect((await errorOf(alice.send(new DescribeKeyCommand({ KeyId: 'alias/nope' })))).name).toBe('NotFoundException');
    // the default policy is the creator's only: bob may not even describe the key
    expect((await errorOf(bob.send(new DescribeKeyCommand({ KeyId: md?.KeyId })))).name).toBe('AccessDeniedException');
    const paged = await alice.send(new ListKeysCommand({ Limit: 1 }));
    expect(paged.Keys).toHaveLength(1);
  });

  it('GenerateDataKey → Decrypt round trip; the encryption context is bound', async () => {
    const { KeyMetadata } = await alice.send(new CreateKeyCommand({}));
    const gen = await alice.send(new GenerateDataKeyCommand({ KeyId: KeyMetadata?.KeyId, KeySpec: 'AES_256', EncryptionContext: ctx }));
    expect(gen.Plaintext).toHaveLength(32);
    const blob = gen.CiphertextBlob as Uint8Array;
    expect(Buffer.from(blob.subarray(0, 4)).toString()).toBe('CFKM');
    const dec = await alice.send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: ctx }));
    expect(Buffer.from(dec.Plaintext as Uint8Array).equals(Buffer.from(gen.Plaintext as Uint8Array))).toBe(true);
    expect(dec.KeyId).toBe(KeyMetadata?.Arn);

    const wrongCtx = await errorOf(alice.send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: { 'coffer:blob': 'ff'.repeat(16) } })));
    expect(wrongCtx.name).toBe('InvalidCiphertextException');
    expect((await errorOf(alice.send(new DecryptCommand({ CiphertextBlob: blob })))).name).toBe('InvalidCiphertextException');
    // a lone surrogate has no UTF-8 form: "\ud800" and "\udfff" would bind as the same context, so neither is taken
    for (const bad of ['\ud800', 'x\udfff']) {
      const e = await errorOf(alice.send(new GenerateDataKeyCommand({ KeyId: KeyMetadata?.KeyId, KeySpec: 'AES_256', EncryptionContext: { 'coffer:blob': bad } })));
      expect(e.name).toBe('ValidationException');
    }
    const tampered = Buffer.from(blob);
    tampered[60] = (tampered[60] ?? 0) ^ 1;
    expect((await errorOf(alice.send(new DecryptCommand({ CiphertextBlob: tampered, EncryptionContext: ctx })))).name).toBe('InvalidCiphertextException');
    expect((await errorOf(alice.send(new DecryptCommand({ CiphertextBlob: Buffer.from('garbage-garbage-garbage-garbage-garbage-garbage-garbage-garbage-garbage!') })))).name).toBe('InvalidCiphertextException');

    const other = await alice.send(new CreateKeyCommand({}));
    const incorrect = await errorOf(alice.send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: ctx, KeyId: other.KeyMetadata?.KeyId })));
    expect(incorrect.name).toBe('IncorrectKeyException');
    expect((await errorOf(bob.send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: ctx })))).name).toBe('AccessDeniedException');

    const noPt = await alice.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: KeyMetadata?.KeyId, NumberOfBytes: 32, EncryptionContext: ctx }));
    expect((noPt as { Plaintext?: unknown }).Plaintext).toBeUndefined();
    expect((await alice.send(new DecryptCommand({ CiphertextBlob: noPt.CiphertextBlob, EncryptionContext: ctx }))).Plaintext).toHaveLength(32);
  });

  it('Encrypt/Decrypt, rotation keeps old ciphertexts readable, ReEncrypt checks both policies', async () => {
    const a = (await alice.send(new CreateKeyCommand({}))).KeyMetadata;
    const enc1 = await alice.send(new EncryptCommand({ KeyId: a?.KeyId, Plaintext: Buffer.from('hello'), EncryptionContext: ctx }));
    await alice.send(new EnableKeyRotationCommand({ KeyId: a?.KeyId, RotationPeriodInDays: 90 }));
    const status = await alice.send(new GetKeyRotationStatusCommand({ KeyId: a?.KeyId }));
    expect(status.KeyRotationEnabled).toBe(true);
    expect(status.RotationPeriodInDays).toBe(90);
    await alice.send(new RotateKeyOnDemandCommand({ KeyId: a?.KeyId }));
    const enc2 = await alice.send(new EncryptCommand({ KeyId: a?.KeyId, Plaintext: Buffer.from('world'), EncryptionContext: ctx }));
    const material = (b: Uint8Array | undefined): string => Buffer.from(b as Uint8Array).subarray(21, 37).toString('hex');
    expect(material(enc1.CiphertextBlob)).not.toBe(material(enc2.CiphertextBlob));
    for (const [enc, text] of [[enc1, 'hello'], [enc2, 'world']] as const) {
      const d = await alice.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ctx }));
      expect(Buffer.from(d.Plaintext as Uint8Array).toString()).toBe(text);
    }

    // bob's key; alice may not ReEncrypt into it until bob's policy lets her
    const b = (await bob.send(new CreateKeyCommand({}))).KeyMetadata;
    const re = () => alice.send(new ReEncryptCommand({ CiphertextBlob: enc1.CiphertextBlob, SourceEncryptionContext: ctx, DestinationKeyId: b?.KeyId, DestinationEncryptionContext: ctx }));
    expect((await errorOf(re())).name).toBe('AccessDeniedException');
    const policy = JSON.stringify({
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Principal: { AWS: BOB_ARN }, Action: 'kms:*', Resource: '*' },
        { Effect: 'Allow', Principal: { AWS: ALICE_ARN }, Action: 'kms:ReEncryptTo', Resource: '*' },
      ],
    });
    await bob.send(new PutKeyPolicyCommand({ KeyId: b?.KeyId, Policy: policy }));
    expect(JSON.parse((await bob.send(new GetKeyPolicyCommand({ KeyId: b?.KeyId }))).Policy as string)).toEqual(JSON.parse(policy));
    const moved = await re();
    expect(moved.KeyId).toBe(b?.Arn);
    expect(moved.SourceKeyId).toBe(a?.Arn);
    expect((moved as { Plaintext?: unknown }).Plaintext).toBeUndefined();
    const d = await bob.send(new DecryptCommand({ CiphertextBlob: moved.CiphertextBlob, EncryptionContext: ctx }));
    expect(Buffer.from(d.Plaintext as Uint8Array).toString()).toBe('hello');
    expect((await errorOf(alice.send(new DecryptCommand({ CiphertextBlob: moved.CiphertextBlob, EncryptionContext: ctx })))).name).toBe('AccessDeniedException');
  });

  it('rejects malformed policies, lockout, disabled keys and unsupported requests', async () => {
    const k = (await alice.send(new CreateKeyCommand({}))).KeyMetadata?.KeyId;
    const put = (Policy: string) => alice.send(new PutKeyPolicyCommand({ KeyId: k, Policy }));
    const st = (s: unknown) => JSON.stringify({ Version: '2012-10-17', Statement: [s] });
    const full = { Effect: 'Allow', Principal: { AWS: ALICE_ARN }, Action: 'kms:*', Resource: '*' };
    expect((await errorOf(put(st({ ...full, Condition: { NumericLessThan: { 'kms:CallerAccount': 1 } } })))).name).toBe('MalformedPolicyDocumentException');
    expect((await errorOf(put(st({ ...full, Condition: { StringEquals: { 'kms:Unknown': 'x' } } })))).name).toBe('MalformedPolicyDocumentException');
    expect((await errorOf(put(st({ ...full, Principal: { AWS: BOB_ARN } })))).name).toBe('MalformedPolicyDocumentException'); // lockout
    expect((await errorOf(put('{"Version":"2012-10-17","Statement":[]}'))).name).toBe('MalformedPolicyDocumentException');
    expect((await errorOf(alice.send(new CreateKeyCommand({ KeySpec: 'RSA_2048' })))).name).toBe('UnsupportedOperationException');
    expect((await errorOf(alice.send(new GenerateDataKeyCommand({ KeyId: k, NumberOfBytes: 32, GrantTokens: ['g'] })))).name).toBe('UnsupportedOperationException');
    expect((await errorOf(alice.send(new GenerateDataKeyCommand({ KeyId: k })))).name).toBe('ValidationException');
    expect((await errorOf(alice.send(new GenerateDataKeyCommand({ KeyId: k, NumberOfBytes: 32, DryRun: true })))).name).toBe('DryRunOperationException');
    await alice.send(new DisableKeyCommand({ KeyId: k }));
    expect((await errorOf(alice.send(new GenerateDataKeyCommand({ KeyId: k, NumberOfBytes: 32 })))).name).toBe('DisabledException');
    expect((await errorOf(alice.send(new RotateKeyOnDemandCommand({ KeyId: k })))).name).toBe('KMSInvalidStateException');
  });
});

describe('SigV4 and the wire protocol', () => {
  function post(headers: Record<string, string>, body: string): Promise<{ status: number; body: { __type?: string; message?: string } }> {
    const url = new URL(h.server.url);
    return new Promise((resolve, reject) => {
      const req = request({ host: url.hostname, port: url.port, method: 'POST', path: '/', headers: { 'content-type': 'application/x-amz-json-1.1', ...headers } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString() || '{}') }));
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  it('rejects an unsigned request', async () => {
    const r = await post({ 'x-amz-target': 'TrentService.ListKeys' }, '{}');
    expect(r.body.__type).toBe('MissingAuthenticationTokenException');
    expect(r.status).toBe(403);
  });

  it('rejects a wrong secret, an unknown key id, and a body changed after signing', async () => {
    const wrong = h.client({ ...h.alice, secretAccessKey: 'x'.repeat(40) });
    const e1 = await errorOf(wrong.send(new ListKeysCommand({})));
    expect(e1.name).toBe('InvalidSignatureException');
    expect(e1.status).toBe(400);
    const unknown = h.client({ ...h.alice, accessKeyId: 'AKIAUNKNOWNUNKNOWN00' });
    expect((await errorOf(unknown.send(new ListKeysCommand({})))).name).toBe('UnrecognizedClientException');
    const swapped = h.client(h.alice);
    swapped.middlewareStack.add((next) => async (args) => {
      const req = args.request as { body: Uint8Array | string };
      req.body = Buffer.from(req.body).toString().replace('"Limit":5', '"Limit":6');
      return next(args);
    }, { step: 'finalizeRequest', priority: 'low', name: 'tamper' });
    expect((await errorOf(swapped.send(new ListKeysCommand({ Limit: 5 })))).name).toBe('InvalidSignatureException');
  });

  it('rejects a request signed more than 15 minutes off, in either direction', async () => {
    for (const offset of [-16 * 60_000, 16 * 60_000]) {
      const skewed = h.client(h.alice, { systemClockOffset: offset });
      // the SDK would correct its clock from the response and retry; maxAttempts 1 keeps the first answer
      const e = await errorOf(skewed.send(new ListKeysCommand({})));
      expect(e.name).toBe('InvalidSignatureException');
      expect(e.message).toMatch(/Signature (expired|not yet current)/);
    }
    const ok = h.client(h.alice, { systemClockOffset: -10 * 60_000 });
    expect((await ok.send(new ListKeysCommand({}))).Keys).toBeDefined();
  });

  it('rejects unknown fields and operations, fail closed', async () => {
    const extra = h.client(h.alice);
    extra.middlewareStack.add((next) => async (args) => {
      const req = args.request as { body: Uint8Array | string; headers: Record<string, string> };
      req.body = Buffer.from(req.body).toString().replace('{', '{"Surprise":1,');
      req.headers['content-length'] = String(Buffer.byteLength(req.body));
      return next(args);
    }, { step: 'build', name: 'extraField' });
    const e = await errorOf(extra.send(new ListKeysCommand({ Limit: 5 })));
    expect(e.name).toBe('ValidationException');
    expect(e.message).toMatch(/Surprise/);
    const sign = h.client(h.alice);
    sign.middlewareStack.add((next) => async (args) => {
      (args.request as { headers: Record<string, string> }).headers['x-amz-target'] = 'TrentService.ScheduleKeyDeletion';
      return next(args);
    }, { step: 'build', name: 'otherOp' });
    expect((await errorOf(sign.send(new ListKeysCommand({})))).name).toBe('UnknownOperationException');
  });

  it('rejects a field given twice, escaped or not, instead of letting one of them win', async () => {
    for (const twice of ['"Limit":5,"Limit":6', '"Limit":5,"\\u004cimit":6']) {
      const dup = h.client(h.alice);
      dup.middlewareStack.add((next) => async (args) => {
        const req = args.request as { body: Uint8Array | string; headers: Record<string, string> };
        req.body = Buffer.from(req.body).toString().replace('"Limit":5', twice);
        req.headers['content-length'] = String(Buffer.byteLength(req.body));
        return next(args);
      }, { step: 'build', name: 'duplicateField' });
      const e = await errorOf(dup.send(new ListKeysCommand({ Limit: 5 })));
      expect([e.name, e.status], twice).toEqual(['SerializationException', 400]);
      expect(e.message).toMatch(/"Limit" appears twice/);
    }
  });

  it('persists keys across restarts and refuses a key store edited on disk', async () => {
    const k = (await alice.send(new CreateKeyCommand({}))).KeyMetadata?.KeyId;
    const enc = await alice.send(new EncryptCommand({ KeyId: k, Plaintext: Buffer.from('durable') }));
    const again = await startKmsServer({ dataDir: h.dataDir, listen: '127.0.0.1:0', credentials: [h.alice], attestationRoot: { kind: 'aws' } });
    try {
      const c = new KMSClient({ region: 'us-east-1', endpoint: again.url, credentials: h.alice, maxAttempts: 1 });
      const d = await c.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob }));
      expect(Buffer.from(d.Plaintext as Uint8Array).toString()).toBe('durable');
      c.destroy();
    } finally {
      await again.close();
    }
    const { readFileSync, writeFileSync, statSync } = await import('node:fs');
    const { join } = await import('node:path');
    expect(statSync(join(h.dataDir, 'kms', 'master.key')).mode & 0o777).toBe(0o600);
    expect(statSync(join(h.dataDir, 'kms', 'master.key')).size).toBe(32);
    const path = join(h.dataDir, 'kms', 'keystore.json');
    const original = readFileSync(path, 'utf8');
    writeFileSync(path, original.replace('kms:*', 'kms:Decrypt'));
    await expect(startKmsServer({ dataDir: h.dataDir, listen: '127.0.0.1:0', credentials: [h.alice], attestationRoot: { kind: 'aws' } })).rejects.toMatchObject({ code: 'INTEGRITY' });
    writeFileSync(path, original);
  });
});
