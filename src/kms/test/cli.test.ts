// `coffer kms serve` and `coffer kms create-key` as processes: the printed endpoint works with the SDK and a
// created vault key carries the attestation-gated policy.
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { DescribeKeyCommand, GetKeyPolicyCommand, KMSClient } from '@aws-sdk/client-kms';
import { afterAll, describe, expect, it } from 'vitest';

const main = fileURLToPath(new URL('./cli-main.ts', import.meta.url));
const dataDir = mkdtempSync(join(tmpdir(), 'coffer-kms-cli-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe('coffer kms', () => {
  it('serve prints a working endpoint; create-key makes an attested key', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', main, 'kms', 'serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (c: Buffer) => {
          out += c.toString();
          if (out.includes('\n')) resolve(out.split('\n')[0] ?? '');
        });
        child.on('exit', (code) => reject(new Error(`kms serve exited ${code}`)));
      });
      const info = JSON.parse(line) as { endpoint: string; region: string; credentialsFile: string };
      expect(info.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const pcr0 = 'c3'.repeat(48);
      const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', main, 'kms', 'create-key', '--data-dir', dataDir, '--endpoint', info.endpoint, '--image-sha384', pcr0, '--alias', 'alias/coffer', '--json']);
      const created = JSON.parse(stdout) as { arn: string };
      const [admin] = (JSON.parse(readFileSync(info.credentialsFile, 'utf8')) as { credentials: Array<{ accessKeyId: string; secretAccessKey: string }> }).credentials;
      const client = new KMSClient({ region: info.region, endpoint: info.endpoint, credentials: admin as { accessKeyId: string; secretAccessKey: string }, maxAttempts: 1 });
      expect((await client.send(new DescribeKeyCommand({ KeyId: 'alias/coffer' }))).KeyMetadata?.Arn).toBe(created.arn);
      const policy = (await client.send(new GetKeyPolicyCommand({ KeyId: created.arn }))).Policy ?? '';
      expect(policy).toContain(pcr0);
      expect(policy).toContain('DenyDecryptWithoutAttestation');
      client.destroy();
    } finally {
      child.kill('SIGTERM');
    }
  });
});
