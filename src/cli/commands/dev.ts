// `coffer dev` (what `npm start` runs): embedded KMS + storage service with development settings, and a banner
// that says where everything is and how to use it.
import type { Command } from 'commander';
import { Option } from 'commander';
import path from 'node:path';
import { parseListen } from '../../config.js';
import { startDev, type RunningDev } from '../../dev.js';
import { untilSignal } from '../../service.js';
import { createLogger } from '../../telemetry/index.js';
import { dataDirOption, jsonOption, listenOption } from '../options.js';
import { print } from '../output.js';

interface DevFlags {
  dataDir: string;
  listen: string;
  kmsListen: string;
  gatewayListen: string;
  gateway: boolean;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('dev')
    .description('run everything on loopback with development settings (storage service + embedded KMS)')
    .addOption(dataDirOption())
    .addOption(listenOption('127.0.0.1:7700'))
    .addOption(new Option('--kms-listen <host:port>', 'where the embedded KMS listens').env('COFFER_KMS_LISTEN').default('127.0.0.1:7710'))
    .addOption(new Option('--gateway-listen <host:port>', 'where the enclave gateway (https) listens').env('COFFER_GATEWAY_LISTEN').default('127.0.0.1:7443'))
    .option('--no-gateway', 'run without the enclave gateway (storage service + KMS only)')
    .addOption(jsonOption())
    .action(async (opts: DevFlags) => {
      const dataDir = path.resolve(opts.dataDir);
      const dev = await startDev({
        dataDir, listen: parseListen(opts.listen), kmsListen: opts.kmsListen, gatewayListen: parseListen(opts.gatewayListen), noGateway: !opts.gateway,
        logger: createLogger({ level: process.env.COFFER_LOG_LEVEL ?? 'warn' }),
      });
      const relative = path.relative(process.cwd(), dataDir) || '.';
      const rel = relative.startsWith('..') ? dataDir : relative;
      print(opts, {
        storageUrl: dev.storageUrl,
        kmsUrl: dev.kmsUrl,
        keyArn: dev.keyArn,
        keyAlias: dev.keyAlias,
        enclaveMeasurement: dev.measurement,
        gatewayUrl: dev.gatewayUrl,
        devRootCert: dev.devRootCert,
        enclaveIsolated: dev.enclave?.isolated ?? null,
        enclavePid: dev.enclave?.pid ?? null,
        proxyPid: dev.proxy?.pid ?? null,
        dataDir,
      }, () => banner(dev, dataDir, rel));
      await untilSignal(dev.close);
    });
}

function banner(dev: RunningDev, dataDir: string, rel: string): string {
  const pcr0 = dev.measurement.pcr0;
  const secret = `$(node -p "require('${path.isAbsolute(rel) ? '' : './'}${path.join(rel, 'kms', 'credentials.json')}').credentials[0].secretAccessKey")`;
  const lines = [
    `storage service: ${dev.storageUrl}`,
    `embedded KMS:    ${dev.kmsUrl} (region ${dev.region}; key ${dev.keyAlias} = ${dev.keyArn})`,
    dev.gatewayUrl
      ? `enclave gateway: ${dev.gatewayUrl} (TLS ends inside the enclave; ${dev.enclave?.isolated ? 'enclave in its own network namespace' : 'enclave not network-isolated (not root)'})`
      : 'enclave gateway: off (--no-gateway)',
    `expected enclave measurement (PCR0 = ImageSha384 admitted by the key policy):`,
    `  ${pcr0}`,
    `  over ${dev.measurement.files} files of the enclave code bundle in ${dev.measurement.bundleDir} (recompute: coffer attestation measure)`,
    `data: ${dataDir} (development only: tokens are signed by a key in it)`,
    '',
  ];
  if (dev.gatewayUrl) {
    const root = path.join(rel, 'attestation', 'dev-root', 'root.pem');
    lines.push(
      'use the gateway (plaintext over attested TLS; sealing happens inside the enclave):',
      `  export COFFER_TOKEN=$(npx coffer token --data-dir ${rel} --user alice)`,
      `  npx coffer enclave verify --server ${dev.gatewayUrl} --expect-pcr0 ${pcr0} --root dev --dev-root-cert ${root} --out enclave.pem`,
      `  curl --cacert enclave.pem -H "Authorization: Bearer $COFFER_TOKEN" -T ./some-file ${dev.gatewayUrl}/v1/files/some-file`,
      `  curl --cacert enclave.pem -H "Authorization: Bearer $COFFER_TOKEN" ${dev.gatewayUrl}/v1/files/some-file -o copy`,
      `  # the coffer command verifies the gateway by itself when it is told the measurement:`,
      `  export COFFER_SERVER=${dev.gatewayUrl} COFFER_EXPECT_PCR0=${pcr0} COFFER_ATTESTATION_ROOT=dev COFFER_DEV_ROOT_CERT=${root}`,
      `  npx coffer put ./some-file /some-file && npx coffer ls / && npx coffer get /some-file ./copy`,
      '',
    );
  }
  lines.push(
    'or seal on this machine and talk to the storage service directly:',
    `  export COFFER_SERVER=${dev.storageUrl}`,
    `  export COFFER_KMS_ENDPOINT=${dev.kmsUrl} COFFER_KMS_KEY_ID=${dev.keyAlias} AWS_REGION=${dev.region}`,
    `  export AWS_ACCESS_KEY_ID=${dev.sealer.accessKeyId} AWS_SECRET_ACCESS_KEY=${secret}`,
    `  npx coffer put ./some-file /sealed-here   # KMS mode: read it back through the gateway`,
    `  # or keep the key yourself: npx coffer keygen --out my.key && npx coffer put --key-file my.key ./f /f && npx coffer get --key-file my.key /f ./f.copy`,
    '',
    'Ctrl-C stops everything.',
  );
  return lines.join('\n');
}
