// `coffer access-key create|list|revoke`: S3 access keys for a vault user. The secret is printed once and stored
// only sealed under the enclave's sealing key (enclave/s3/access-keys.ts); the S3 endpoint reads the same store.
import type { Command } from 'commander';
import { AccessKeyStore, accessKeysPath, devSealer } from '../../../enclave/s3/access-keys.js';
import { dataDirOption, jsonOption } from '../options.js';
import { print } from '../output.js';

async function store(dataDir: string): Promise<AccessKeyStore> {
  return new AccessKeyStore(accessKeysPath(dataDir), await devSealer(dataDir));
}

export function register(program: Command): void {
  const cmd = program.command('access-key').description('S3 access keys (for the AWS CLI, boto3, rclone against the S3 endpoint)');
  cmd
    .command('create')
    .description('create an access key for a user; the secret is shown once')
    .addOption(dataDirOption())
    .requiredOption('--user <name>', 'vault user the key acts as (their grants apply)')
    .addOption(jsonOption())
    .action(async (opts: { dataDir: string; user: string; json?: boolean }) => {
      const k = await (await store(opts.dataDir)).create(opts.user);
      print(opts, { accessKeyId: k.id, secretAccessKey: k.secret, user: k.user, createdAt: k.createdAt }, () =>
        `export AWS_ACCESS_KEY_ID=${k.id}\nexport AWS_SECRET_ACCESS_KEY=${k.secret}\n# user ${k.user}; the secret is not shown again`);
    });
  cmd
    .command('list')
    .description('list access keys (never their secrets)')
    .addOption(dataDirOption())
    .option('--user <name>', 'only this user\'s keys')
    .addOption(jsonOption())
    .action(async (opts: { dataDir: string; user?: string; json?: boolean }) => {
      const keys = await (await store(opts.dataDir)).list(opts.user);
      print(opts, { keys }, () => keys.map((k) => `${k.id}  ${k.user}  ${k.createdAt}`).join('\n'));
    });
  cmd
    .command('revoke <id>')
    .description('revoke an access key (refused from the next request on)')
    .addOption(dataDirOption())
    .addOption(jsonOption())
    .action(async (id: string, opts: { dataDir: string; json?: boolean }) => {
      await (await store(opts.dataDir)).revoke(id);
      print(opts, { revoked: id }, () => `revoked ${id}`);
    });
}
