// AwsKeyService against the embedded KMS over loopback HTTP runs the KeyService contract suite.
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { CreateKeyCommand } from '@aws-sdk/client-kms';
import { afterAll, beforeAll } from 'vitest';
import { SimulatedNsm, ensureDevRoot } from '../../enclave/attestation/index.js';
import { AwsKeyService, attestedKeyPolicy } from './index.js';
import { keyServiceContract, type KeyServiceFixture } from './key-service.case.js';
import { ALICE_ARN, BOB_ARN, CAROL_ARN, startHarness, type Harness } from './test/harness.js';

const PCR0 = 'd4'.repeat(48);
let h: Harness;
let f: KeyServiceFixture;

beforeAll(async () => {
  h = await startHarness(async (dir) => (await ensureDevRoot(dir)).trustRoot);
  // alice seals (client), bob is the enclave principal, carol administers the keys
  const admin = h.client(h.carol);
  const policy = attestedKeyPolicy({ admins: [CAROL_ARN], sealers: [ALICE_ARN], enclaves: [BOB_ARN], imageSha384: [PCR0] });
  const [k1, k2] = await Promise.all([1, 2].map(async () => (await admin.send(new CreateKeyCommand({ Policy: policy, BypassPolicyLockoutSafetyCheck: true }))).KeyMetadata?.Arn as string));
  const foreign = (await admin.send(new CreateKeyCommand({}))).KeyMetadata?.Arn as string;
  const svc = (c: typeof h.alice): AwsKeyService =>
    new AwsKeyService({ keyId: k1 as string, region: h.server.region, endpoint: h.server.url, credentials: { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey } });
  const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const spki = pair.publicKey.export({ format: 'der', type: 'spki' });
  const allowed = await (await SimulatedNsm.create({ dataDir: h.dataDir, pcrs: { 0: PCR0 } })).attest({ publicKey: spki });
  const denied = await (await SimulatedNsm.create({ dataDir: h.dataDir, pcrs: { 0: 'e5'.repeat(48) } })).attest({ publicKey: spki });
  f = { sealer: svc(h.alice), admin: svc(h.carol), enclave: svc(h.bob), foreignKey: foreign, allowedDocument: allowed, deniedDocument: denied, privateKey: pair.privateKey as KeyObject, rewrapTarget: k2 as string };
});
afterAll(async () => {
  f.sealer.close();
  f.admin.close();
  f.enclave.close();
  await h.close();
});

keyServiceContract('AwsKeyService → embedded KMS', () => f);
