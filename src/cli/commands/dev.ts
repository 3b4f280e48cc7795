// `coffer dev` (what `npm start` runs): embedded KMS + storage service with development settings, and a banner
// that says where everything is and how to use it.
import type { Command } from 'commander';
import { Option } from 'commander';
import path from 'node:path';
import { parseListen } from '../../config.js';
import { startDev, type RunningDev } from '../../dev.js';
import { startDevS3Endpoint } from '../../../enclave/s3/dev-endpoint.js';
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
  s3Listen: string;
  s3?: boolean;
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
    .addOption(new Option('--s3-listen <host:port>', 'where the S3-compatible endpoint (https) listens').env('COFFER_S3_LISTEN').default('127.0.0.1:7701'))
    .option('--s3', 'also start the development S3-compatible endpoint: it runs on this host and seals with a key file here, so plaintext passes through a host process (a client-side tool, not the attested path; docs/s3-api.md)')
    .addOption(jsonOption())
    .action(async (opts: DevFlags) => {
      const dataDir = path.resolve(opts.dataDir);
      const dev = await startDev({
        dataDir, listen: parseListen(opts.listen), kmsListen: opts.kmsListen, gatewayListen: parseListen(opts.gatewayListen), noGateway: !opts.gateway, homes: true,
        logger: createLogger({ level: process.env.COFFER_LOG_LEVEL ?? 'warn' }),
      });
      // the S3 endpoint (docs/s3-api.md): development form, beside the storage service, sealing with a key file
      const s3 = opts.s3 === true
        ? await startDevS3Endpoint({ dataDir, storageUrl: dev.storageUrl, listen: parseListen(opts.s3Listen) }).catch(async (e: unknown) => {
          await dev.close();
          throw e;
        })
        : null;
      const relative = path.relative(process.cwd(), dataDir) || '.';
      const rel = relative.startsWith('..') ? dataDir : relative;
      print(opts, {
        storageUrl: dev.storageUrl,
        kmsUrl: dev.kmsUrl,
        keyArn: dev.keyArn,
        keyAlias: dev.keyAlias,
        enclaveMeasurement: dev.measurement,
        // the sealer only: it can take new data keys for its own uploads, never an existing one back
        clientCredential: { accessKeyId: dev.sealer.accessKeyId, secretAccessKey: dev.sealer.secretAccessKey, principalArn: dev.sealer.principalArn },
        gatewayUrl: dev.gatewayUrl,
        devRootCert: dev.devRootCert,
        enclaveIsolated: dev.enclave?.isolated ?? null,
        enclavePid: dev.enclave?.pid ?? null,
        proxyPid: dev.proxy?.pid ?? null,
        dataDir,
        homes: '/home/NAME',
        s3Url: s3?.url ?? null,
        s3Certificate: s3?.certFile ?? null,
      }, () => banner(dev, dataDir, rel) + (s3 ? s3Banner(s3.url, s3.certFile, rel) : ''));
      await untilSignal(async () => {
        await s3?.close();
        await dev.close();
      });
    });
}

function s3Banner(url: string, certFile: string, rel: string): string {
  const cert = path.relative(process.cwd(), certFile).startsWith('..') ? certFile : path.relative(process.cwd(), certFile);
  return [
    '',
    `S3 endpoint:     ${url} (path-style; development form, NOT attested: a host process that sees plaintext and seals with ${path.join(rel, 's3', 'gateway.key')}; certificate to pin: ${cert})`,
    `  eval "$(npx coffer access-key create --data-dir ${rel} --user alice)"`,
    `  AWS_CA_BUNDLE=${cert} aws --endpoint-url ${url} s3 mb s3://docs && AWS_CA_BUNDLE=${cert} aws --endpoint-url ${url} s3 cp ./some-file s3://docs/`,
    `  rclone --ca-cert ${cert} --s3-provider Other --s3-endpoint ${url} --s3-force-path-style --s3-access-key-id "$AWS_ACCESS_KEY_ID" --s3-secret-access-key "$AWS_SECRET_ACCESS_KEY" lsf :s3:docs`,
  ].join('\n');
}

function banner(dev: RunningDev, dataDir: string, rel: string): string {
  const pcr0 = dev.measurement.pcr0;
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
    `KMS administrator credential: ${path.join(dataDir, 'kms', 'credentials.json')} (mode 0600; for admin commands such as coffer keys rewrap, never for clients)`,
    `dev tokens: each user NAME has /home/NAME, theirs alone; nothing else without a grant (coffer share PATH --user NAME --role read|write|admin);`,
    `  an --admin token (coffer token --admin) may do everything, including coffer users disable`,
    '',
  ];
  if (dev.gatewayUrl) {
    const root = path.join(rel, 'attestation', 'dev-root', 'root.pem');
    lines.push(
      'use the gateway (plaintext over attested TLS; sealing happens inside the enclave):',
      `  export COFFER_TOKEN=$(npx coffer token --data-dir ${rel} --user alice)`,
      `  npx coffer enclave verify --server ${dev.gatewayUrl} --expect-pcr0 ${pcr0} --root dev --dev-root-cert ${root} --out enclave.pem`,
      `  curl --cacert enclave.pem -H "Authorization: Bearer $COFFER_TOKEN" -T ./some-file ${dev.gatewayUrl}/v1/files/home/alice/some-file`,
      `  curl --cacert enclave.pem -H "Authorization: Bearer $COFFER_TOKEN" ${dev.gatewayUrl}/v1/files/home/alice/some-file -o copy`,
      `  # the coffer command verifies the gateway by itself when it is told the measurement:`,
      `  export COFFER_SERVER=${dev.gatewayUrl} COFFER_EXPECT_PCR0=${pcr0} COFFER_ATTESTATION_ROOT=dev COFFER_DEV_ROOT_CERT=${root}`,
      `  npx coffer put ./some-file /home/alice/some-file && npx coffer ls /home/alice && npx coffer get /home/alice/some-file ./copy`,
      '',
    );
  }
  lines.push(
    'or seal on this machine and talk to the storage service directly:',
    `  export COFFER_SERVER=${dev.storageUrl}`,
    `  # this client credential may only generate data keys for its own new data; only the enclave decrypts`,
    `  export COFFER_KMS_ENDPOINT=${dev.kmsUrl} COFFER_KMS_KEY_ID=${dev.keyArn} AWS_REGION=${dev.region}`,
    `  export AWS_ACCESS_KEY_ID=${dev.sealer.accessKeyId} AWS_SECRET_ACCESS_KEY=${dev.sealer.secretAccessKey}`,
    `  npx coffer put ./some-file /home/alice/sealed-here   # KMS mode: read it back through the gateway`,
    `  # or keep the key yourself: npx coffer keygen --out my.key && npx coffer put --key-file my.key ./f /home/alice/f && npx coffer get --key-file my.key /home/alice/f ./f.copy`,
    '',
    'Ctrl-C stops everything.',
  );
  return lines.join('\n');
}
