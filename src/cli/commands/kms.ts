// `coffer kms serve`: the embedded AWS-KMS-compatible server (docs/kms.md); `coffer kms create-key`: a vault
// key whose data keys are released only to attested enclaves with an allowed measurement.
import { readFile } from 'node:fs/promises';
import { CreateAliasCommand, CreateKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { Option, type Command } from 'commander';
import { ensureDevRoot } from '../../../enclave/attestation/index.js';
import type { TrustRoot } from '../../attestation/index.js';
import { CofferError, ErrorCode } from '../../errors.js';
import { attestedKeyPolicy, credentialsPath, loadOrCreateCredentials, roleCredentials, startKmsServer } from '../../kms/index.js';
import { untilSignal } from '../../service.js';
import { dataDirOption, jsonOption, listenOption } from '../options.js';
import { print } from '../output.js';

interface ServeFlags {
  dataDir: string;
  listen: string;
  attestationRoot: 'dev' | 'aws';
  region: string;
  json?: boolean;
}

interface CreateKeyFlags {
  dataDir: string;
  endpoint: string;
  region: string;
  imageSha384: string[];
  enclavePrincipal: string[];
  sealer: string[];
  sameKeyReencryptOnly?: boolean;
  alias?: string;
  description?: string;
  json?: boolean;
}

const regionOption = (): Option => new Option('--region <region>', 'region of the key ARNs and SigV4 scope').env('AWS_REGION').default('us-east-1');

export function register(program: Command): void {
  const kms = program.command('kms').description('the embedded AWS-KMS-compatible key service');
  kms
    .command('serve')
    .description('run the embedded KMS (AWS KMS JSON protocol; point @aws-sdk/client-kms at it with `endpoint`)')
    .addOption(dataDirOption())
    .addOption(listenOption('127.0.0.1:7710', 'COFFER_KMS_LISTEN')) // not COFFER_LISTEN: that is the storage service's
    // The dev root's private keys sit in the data directory, readable by the (untrusted) host that runs this:
    // trusting it lets the host mint documents for any measurement. So `serve` trusts AWS unless told otherwise;
    // `coffer dev` (a simulated enclave on one machine) chooses the dev root itself.
    .addOption(new Option('--attestation-root <root>', 'root attestation documents must chain to (dev: the data dir\'s own root, for development only)').choices(['dev', 'aws']).default('aws'))
    .addOption(regionOption())
    .addOption(jsonOption())
    .action(async (opts: ServeFlags) => {
      const root: TrustRoot = opts.attestationRoot === 'aws' ? { kind: 'aws' } : (await ensureDevRoot(opts.dataDir)).trustRoot;
      const credentials = await loadOrCreateCredentials(opts.dataDir);
      const server = await startKmsServer({
        dataDir: opts.dataDir, listen: opts.listen, credentials, attestationRoot: root, region: opts.region,
        // the client gets a bare InternalFailure (no internals leak); the operator gets the error on stderr
        onInternalError: (e) => process.stderr.write(`coffer kms: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`),
      });
      const file = credentialsPath(opts.dataDir);
      const { sealer } = roleCredentials(credentials);
      const stopped = untilSignal(server.close); // before the banner scripts wait for
      print(opts, { endpoint: server.url, region: server.region, attestationRoot: opts.attestationRoot, credentialsFile: file, principals: credentials.map((c) => ({ accessKeyId: c.accessKeyId, principalArn: c.principalArn })) }, () => [
        `embedded KMS: ${server.url} (region ${server.region}, attestation root: ${opts.attestationRoot})`,
        `credentials:  ${file} (mode 0600)`,
        ...credentials.map((c) => `  ${c.accessKeyId} → ${c.principalArn}`),
        'point a client (sealer role: new data keys only) at it:',
        `  export AWS_ENDPOINT_URL_KMS=${server.url} AWS_REGION=${server.region}`,
        `  export AWS_ACCESS_KEY_ID=${sealer.accessKeyId} AWS_SECRET_ACCESS_KEY=<secretAccessKey of ${sealer.principalArn} in ${file}>`,
        '(the administrator credential in that file is for admin commands only; enclaves have their own)',
        `  new KMSClient({ region: '${server.region}', endpoint: '${server.url}' })`,
        `point Coffer at it: COFFER_KMS_ENDPOINT=${server.url}`,
      ].join('\n'));
      await stopped;
    });

  kms
    .command('create-key')
    .description('create a vault key: plaintext data keys only for --sealer principals, enclaves only via attestation; its policy can never be changed')
    .addOption(dataDirOption())
    .addOption(new Option('--endpoint <url>', 'KMS endpoint').env('COFFER_KMS_ENDPOINT').default('http://127.0.0.1:7710'))
    .addOption(regionOption())
    .requiredOption('--image-sha384 <hex...>', 'allowed enclave measurement(s): PCR0, 96 hex digits')
    .option('--enclave-principal <arn...>', 'principal(s) enclaves call KMS as (default: the enclave credential)', [])
    .option('--sealer <arn...>', 'principal(s) that may take plaintext data keys for new data (default: the client credential)', [])
    .option('--same-key-reencrypt-only', 'deny ReEncrypt to any other key (what a policy for AWS KMS needs; see docs/kms.md)')
    .option('--alias <name>', 'alias/… to create for the key')
    .option('--description <text>', 'key description')
    .addOption(jsonOption())
    .action(async (opts: CreateKeyFlags) => {
      const file = credentialsPath(opts.dataDir);
      await readFile(file).catch((e: unknown) => {
        throw new CofferError(ErrorCode.NOT_FOUND, `no KMS credentials at ${file}: run \`coffer kms serve\` first`, { cause: e });
      });
      const { admin, sealer, enclave } = roleCredentials(await loadOrCreateCredentials(opts.dataDir));
      let policy: string;
      try {
        policy = attestedKeyPolicy({
          admins: [admin.principalArn],
          sealers: opts.sealer.length ? opts.sealer : [sealer.principalArn],
          enclaves: opts.enclavePrincipal.length ? opts.enclavePrincipal : [enclave.principalArn],
          imageSha384: opts.imageSha384.map((h) => h.toLowerCase()),
          sameKeyReEncryptOnly: opts.sameKeyReencryptOnly === true,
        });
      } catch (e) {
        throw new CofferError(ErrorCode.INVALID_ARGUMENT, (e as Error).message, { cause: e });
      }
      const client = new KMSClient({ region: opts.region, endpoint: opts.endpoint, credentials: { accessKeyId: admin.accessKeyId, secretAccessKey: admin.secretAccessKey } });
      try {
        const md = (await client.send(new CreateKeyCommand({ Policy: policy, BypassPolicyLockoutSafetyCheck: true, Description: opts.description ?? 'Coffer vault key' }))).KeyMetadata;
        if (opts.alias) await client.send(new CreateAliasCommand({ AliasName: opts.alias, TargetKeyId: md?.KeyId }));
        print(opts, { keyId: md?.KeyId, arn: md?.Arn, alias: opts.alias ?? null }, () => `${md?.Arn}${opts.alias ? ` (${opts.alias})` : ''}`);
      } finally {
        client.destroy();
      }
    });
}
