// `coffer keys …`: key operations. `export-dek PATH` prints a blob's data key in hex (client-held-key mode
// only) so anyone holding the key file can open the chunks with any tool that follows docs/format.md.
import { DescribeKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { Option, type Command } from 'commander';
import { metadataConfig } from '../../config.js';
import { rewrapAll } from '../../keys/rewrap.js';
import { AwsKeyService, credentialsPath, loadOrCreateCredentials, roleCredentials } from '../../kms/index.js';
import { access } from 'node:fs/promises';
import { openMetadataStore } from '../../metadata/index.js';
import { CofferError, ErrorCode } from '../../errors.js';
import { dataKeys, vaultPathArg, withClient, withKeys, withServer, type KeyFlags, type ServerFlags } from '../connect.js';
import { dataDirOption, jsonOption, mongoUriOption } from '../options.js';
import { print } from '../output.js';

export function register(program: Command): void {
  const keys = program.command('keys').description('data key operations');
  const exportDek = keys
    .command('export-dek')
    .description("print a file's data key in hex (key-file mode; treat the output as a secret)")
    .argument('<path>', 'vault path', vaultPathArg)
    .addOption(jsonOption());
  withKeys(withServer(exportDek)).action(async (vaultPath: string, opts: ServerFlags & KeyFlags & { json?: boolean }) => {
    const provider = await dataKeys(opts);
    await withClient(opts, async (client) => {
      if (!opts.keyFile) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'export-dek works in key-file mode only (--key-file): KMS-held keys never leave the KMS except to attested enclaves');
      const { manifest } = await client.manifestByPath(vaultPath);
      const dek = await provider.openDataKey(manifest.keyRecord, manifest.blobId);
      const hex = Buffer.from(dek).toString('hex');
      dek.fill(0);
      print(opts, { path: vaultPath, blobId: manifest.blobId, keyGeneration: manifest.keyGeneration, dek: hex }, () => hex);
    });
  });

  const rewrap = keys
    .command('rewrap')
    .description("re-wrap every KMS-held blob key under another KMS key (ReEncrypt; chunks untouched; resumable)")
    .requiredOption('--to-key <key>', 'destination KMS key: id, ARN or alias')
    .addOption(dataDirOption())
    .addOption(mongoUriOption())
    .addOption(new Option('--kms-endpoint <url>', 'KMS endpoint (the embedded KMS, or a custom AWS KMS endpoint)').env('COFFER_KMS_ENDPOINT'))
    .addOption(new Option('--region <region>', 'AWS region').env('AWS_REGION'))
    .option('--actor <name>', 'who is running it (audit log)', process.env.USER ?? 'operator')
    .addOption(jsonOption());
  rewrap.action(async (opts: RewrapFlags) => {
    const region = opts.region ?? (opts.kmsEndpoint ? 'us-east-1' : undefined);
    const credentials = await embeddedAdmin(opts);
    const kms = new KMSClient({ ...(region ? { region } : {}), ...(opts.kmsEndpoint ? { endpoint: opts.kmsEndpoint } : {}), ...(credentials ? { credentials } : {}) });
    const store = await openMetadataStore(metadataConfig(opts.dataDir, opts.mongodbUri));
    try {
      const described = await kms.send(new DescribeKeyCommand({ KeyId: opts.toKey })).catch((e: unknown) => {
        throw new CofferError(ErrorCode.KMS, `cannot describe ${opts.toKey}: ${(e as Error).message}`, { cause: e });
      });
      const arn = described.KeyMetadata?.Arn;
      if (!arn) throw new CofferError(ErrorCode.KMS, `KMS returned no ARN for ${opts.toKey}`);
      const service = new AwsKeyService({ keyId: arn, client: kms });
      const tty = process.stderr.isTTY && !process.env.COFFER_NO_PROGRESS;
      let n = 0;
      const report = await rewrapAll({
        store,
        keys: service,
        toKeyArn: arn,
        actor: `:operator:${opts.actor}`,
        onBlob: () => {
          n++;
          if (tty && n % 100 === 0) process.stderr.write(`\rrewrap: ${n} blobs scanned`);
        },
      });
      if (tty) process.stderr.write('\n');
      print(opts, { toKey: arn, ...report }, () =>
        `rewrapped ${report.rewrapped} blob key(s) under ${arn}; ${report.already} already there, ${report.notKms} held by key files, ${report.skippedDeleting} being deleted`,
      );
    } finally {
      await store.close();
      kms.destroy();
    }
  });
}

/**
 * Against the embedded KMS (an endpoint, no AWS credentials in the environment) rewrap runs as the administrator
 * whose credential `coffer dev` / `kms serve` keep in the data directory; clients never hold it.
 */
async function embeddedAdmin(opts: RewrapFlags): Promise<{ accessKeyId: string; secretAccessKey: string } | undefined> {
  if (!opts.kmsEndpoint || process.env.AWS_ACCESS_KEY_ID) return undefined;
  const file = credentialsPath(opts.dataDir);
  if (!(await access(file).then(() => true, () => false))) return undefined;
  const { admin } = roleCredentials(await loadOrCreateCredentials(opts.dataDir));
  return { accessKeyId: admin.accessKeyId, secretAccessKey: admin.secretAccessKey };
}

interface RewrapFlags {
  toKey: string;
  dataDir: string;
  mongodbUri?: string;
  kmsEndpoint?: string;
  region?: string;
  actor: string;
  json?: boolean;
}
