// `coffer dev` (what `npm start` runs): embedded KMS + storage service with development settings, and a banner
// that says where everything is and how to use it.
import type { Command } from 'commander';
import { Option } from 'commander';
import path from 'node:path';
import { parseListen } from '../../config.js';
import { startDev } from '../../dev.js';
import { untilSignal } from '../../service.js';
import { createLogger } from '../../telemetry/index.js';
import { dataDirOption, jsonOption, listenOption } from '../options.js';
import { print } from '../output.js';

interface DevFlags {
  dataDir: string;
  listen: string;
  kmsListen: string;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('dev')
    .description('run everything on loopback with development settings (storage service + embedded KMS)')
    .addOption(dataDirOption())
    .addOption(listenOption('127.0.0.1:7700'))
    .addOption(new Option('--kms-listen <host:port>', 'where the embedded KMS listens').env('COFFER_KMS_LISTEN').default('127.0.0.1:7710'))
    .addOption(jsonOption())
    .action(async (opts: DevFlags) => {
      const dataDir = path.resolve(opts.dataDir);
      const dev = await startDev({ dataDir, listen: parseListen(opts.listen), kmsListen: opts.kmsListen, homes: true, logger: createLogger({ level: process.env.COFFER_LOG_LEVEL ?? 'warn' }) });
      const relative = path.relative(process.cwd(), dataDir) || '.';
      const rel = relative.startsWith('..') ? dataDir : relative;
      print(opts, {
        storageUrl: dev.storageUrl,
        kmsUrl: dev.kmsUrl,
        keyArn: dev.keyArn,
        keyAlias: dev.keyAlias,
        enclaveMeasurement: dev.measurement,
        gatewayUrl: null,
        dataDir,
        homes: '/home/NAME',
      }, () => [
        `storage service: ${dev.storageUrl}`,
        `embedded KMS:    ${dev.kmsUrl} (region ${dev.region}; key ${dev.keyAlias} = ${dev.keyArn})`,
        `enclave gateway: not in this build yet (the attested plaintext gateway is the enclave runtime's job)`,
        `expected enclave measurement (PCR0 = ImageSha384 admitted by the key policy):`,
        `  ${dev.measurement.pcr0}`,
        `  over ${dev.measurement.files} files of ${dev.measurement.bundleDir} (recompute: coffer attestation measure DIR)`,
        `data: ${dataDir} (development only: tokens are signed by a key in it)`,
        `dev tokens: each user NAME has /home/NAME, theirs alone; nothing else without a grant (coffer share PATH --user NAME --role read|write|admin);`,
        `  an --admin token (coffer token --admin) may do everything, including coffer users disable`,
        '',
        'try it:',
        `  export COFFER_SERVER=${dev.storageUrl}`,
        `  export COFFER_TOKEN=$(npx coffer token --data-dir ${rel} --user alice)`,
        `  # seal with a KMS data key (this dev credential may generate data keys; only enclaves may decrypt):`,
        `  export COFFER_KMS_ENDPOINT=${dev.kmsUrl} COFFER_KMS_KEY_ID=${dev.keyAlias} AWS_REGION=${dev.region}`,
        `  export AWS_ACCESS_KEY_ID=${dev.sealer.accessKeyId} AWS_SECRET_ACCESS_KEY=$(node -p "require('${path.isAbsolute(rel) ? '' : './'}${path.join(rel, 'kms', 'credentials.json')}').credentials[0].secretAccessKey")`,
        `  npx coffer put ./some-file /home/alice/some-file`,
        `  # or keep the key yourself: npx coffer keygen --out my.key && npx coffer put --key-file my.key ./f /home/alice/f && npx coffer get --key-file my.key /home/alice/f ./f.copy`,
        '',
        'Ctrl-C stops everything.',
      ].join('\n'));
      await untilSignal(dev.close);
    });
}
