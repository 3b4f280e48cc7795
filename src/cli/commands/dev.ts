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
  s3Listen?: string;
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
    .addOption(new Option('--s3-listen <host:port>', "where the enclave's S3-compatible listener (https, the gateway's attested certificate) is reached (default 127.0.0.1:7701; any free port when --gateway-listen takes port 0)").env('COFFER_S3_LISTEN'))
    .addOption(jsonOption())
    .action(async (opts: DevFlags) => {
      const dataDir = path.resolve(opts.dataDir);
      const dev = await startDev({
        dataDir, listen: parseListen(opts.listen), kmsListen: opts.kmsListen, gatewayListen: parseListen(opts.gatewayListen), ...(opts.s3Listen ? { s3Listen: parseListen(opts.s3Listen) } : {}), noGateway: !opts.gateway, homes: true,
        logger: createLogger({ level: process.env.COFFER_LOG_LEVEL ?? 'warn' }),
      });
      // before the banner: a SIGTERM sent as soon as it is read must stop everything, not kill this process alone
      const stopped = untilSignal(() => dev.close());
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
        s3Url: dev.s3Url,
      }, () => banner(dev, dataDir, rel));
      await stopped;
    });
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
  if (dev.s3Url) {
    const url = dev.s3Url;
    lines.push(
      `S3 endpoint:     ${url} (path-style; inside the enclave, the gateway's attested certificate: pin enclave.pem from coffer enclave verify above)`,
      `  # as an administrator, through the gateway (COFFER_SERVER/COFFER_EXPECT_PCR0… as above): a bucket is a top-level directory`,
      `  export ADMIN_TOKEN=$(npx coffer token --data-dir ${rel} --user admin --admin)`,
      `  COFFER_TOKEN=$ADMIN_TOKEN npx coffer mkdir /docs && COFFER_TOKEN=$ADMIN_TOKEN npx coffer share /docs --user alice --role write`,
      `  # an access key for alice, made and sealed inside the enclave (the secret is shown once):`,
      `  eval "$(COFFER_TOKEN=$ADMIN_TOKEN npx coffer access-key create --server ${dev.gatewayUrl ?? ''} --ca-cert enclave.pem --user alice)"`,
      `  AWS_CA_BUNDLE=enclave.pem aws --endpoint-url ${url} s3 cp ./some-file s3://docs/ && AWS_CA_BUNDLE=enclave.pem aws --endpoint-url ${url} s3 ls s3://docs/`,
      `  rclone --ca-cert enclave.pem --s3-provider Other --s3-endpoint ${url} --s3-force-path-style --s3-access-key-id "$AWS_ACCESS_KEY_ID" --s3-secret-access-key "$AWS_SECRET_ACCESS_KEY" lsf :s3:docs`,
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
