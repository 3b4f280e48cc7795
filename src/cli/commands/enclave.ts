// `coffer enclave run|proxy|verify`: the enclave process (the trusted half), the host-side byte proxy in front of
// it, and the client's verification of a gateway (docs/enclave-gateway.md).
import { readFile, writeFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import type { JWK } from 'jose';
import { parseListen } from '../../config.js';
import { CofferError, ErrorCode } from '../../errors.js';
import { untilSignal } from '../../service.js';
import { createLogger } from '../../telemetry/index.js';
import { dataDirOption, jsonOption } from '../options.js';
import { print } from '../output.js';
import { gatewayTrustRoot } from '../gateway-connect.js';

interface RunFlags {
  channel: string;
  dataDir: string;
  kmsKeyId: string;
  region: string;
  tokenJwk: string;
  tlsName: string[];
  defaultRootRole: 'none' | 'read' | 'write';
  homes?: boolean;
}

interface ProxyFlags {
  channel: string;
  listen: string;
  s3Listen?: string;
  storage: string;
  kms: string;
}

interface VerifyFlags {
  server: string;
  expectPcr0?: string;
  allowDebugMode?: boolean;
  root: 'aws' | 'dev';
  devRootCert?: string;
  out?: string;
  json?: boolean;
}

const channelOption = (): Option => new Option('--channel <dir>', 'the host channel directory (Unix sockets shared with `coffer enclave proxy`)').env('COFFER_ENCLAVE_CHANNEL').makeOptionMandatory();

export function register(program: Command): void {
  const enclave = program.command('enclave').description('the enclave gateway: run it, proxy to it, verify it');

  enclave
    .command('run')
    .description('run the enclave: attested TLS gateway with the plaintext API, sealing inside (development: simulated NSM)')
    .addOption(channelOption())
    .addOption(dataDirOption())
    .addOption(new Option('--kms-key-id <id>', 'KMS key for new data keys').env('COFFER_KMS_KEY_ID').default('alias/coffer-vault'))
    .addOption(new Option('--region <region>', 'KMS region').env('AWS_REGION').default('us-east-1'))
    .addOption(new Option('--token-jwk <file>', "the token issuer's public key (JWK JSON)").env('COFFER_TOKEN_JWK').makeOptionMandatory())
    .addOption(new Option('--default-root-role <role>', "role every authenticated user has on / when the enclave decides access (as coffer serve's)").choices(['none', 'read', 'write']).default('none'))
    .option('--homes', 'development homes: accept /home and /home/NAME (owned by NAME) as the storage service makes them, without a MAC')
    .option('--tls-name <name>', 'a DNS name or IP address for the gateway certificate, repeatable (default localhost, 127.0.0.1, ::1)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .action(async (opts: RunFlags) => {
      const { startEnclave } = await import('../../../enclave/runtime/enclave.js');
      let jwk: JWK;
      try {
        jwk = JSON.parse(await readFile(opts.tokenJwk, 'utf8')) as JWK;
      } catch (e) {
        throw new CofferError(ErrorCode.INVALID_ARGUMENT, `--token-jwk ${opts.tokenJwk} is not a readable JWK: ${(e as Error).message}`, { cause: e });
      }
      const id = process.env.AWS_ACCESS_KEY_ID;
      const secret = process.env.AWS_SECRET_ACCESS_KEY;
      const running = await startEnclave({
        channelDir: opts.channel,
        devDataDir: opts.dataDir,
        kmsKeyId: opts.kmsKeyId,
        kmsRegion: opts.region,
        ...(id && secret ? { kmsCredentials: { accessKeyId: id, secretAccessKey: secret } } : {}),
        tokenJwk: jwk,
        ...(opts.tlsName.length > 0 ? { tlsNames: opts.tlsName } : {}),
        defaultRootRole: opts.defaultRootRole,
        homes: opts.homes === true,
        logger: createLogger({ level: process.env.COFFER_LOG_LEVEL ?? 'warn' }),
      });
      const stopped = untilSignal(running.close); // before the ready line, so a SIGTERM right after it is caught
      // one line the launcher waits for (enclave/runtime/launch.ts): the measurement and the certificate's key
      process.stdout.write(`${JSON.stringify({ ready: true, pcr0: running.pcr0, spkiSha256: running.identity.tls.spkiSha256 })}\n`);
      await stopped;
    });

  enclave
    .command('proxy')
    .description('the host side of the channel: forwards client TLS bytes to the enclave and its calls to the storage service and KMS (bytes only)')
    .addOption(channelOption())
    .addOption(new Option('--listen <host:port>', 'where clients connect').env('COFFER_GATEWAY_LISTEN').default('127.0.0.1:7443'))
    .addOption(new Option('--s3-listen <host:port>', "where S3 clients connect (the enclave's S3 listener)").env('COFFER_S3_LISTEN'))
    .addOption(new Option('--storage <url>', 'the storage service').env('COFFER_SERVER').default('http://127.0.0.1:7700'))
    .addOption(new Option('--kms <url>', 'the KMS').env('COFFER_KMS_ENDPOINT').default('http://127.0.0.1:7710'))
    .action(async (opts: ProxyFlags) => {
      const { startHostProxy } = await import('../../../enclave/runtime/proxy.js');
      const proxy = await startHostProxy({
        channelDir: opts.channel, listen: parseListen(opts.listen), storageUrl: opts.storage, kmsUrl: opts.kms, ...(opts.s3Listen ? { s3Listen: parseListen(opts.s3Listen) } : {}),
      });
      const stopped = untilSignal(proxy.close); // before the lines scripts wait for
      if (proxy.s3Url) process.stdout.write(`enclave S3: ${proxy.s3Url}\n`);
      process.stdout.write(`enclave gateway: ${proxy.url}\n`);
      await stopped;
    });

  enclave
    .command('verify')
    .description('verify an enclave gateway (own nonce, pinned root, PCR0, age, the TLS certificate bound into the document) and write its certificate')
    .addOption(new Option('--server <url>', 'the gateway (https://)').env('COFFER_SERVER').makeOptionMandatory())
    .addOption(new Option('--expect-pcr0 <hex>', 'the enclave measurement you expect (96 hex digits)').env('COFFER_EXPECT_PCR0'))
    .option('--allow-debug-mode', 'accept a debug-mode enclave (never in production)')
    .addOption(new Option('--root <kind>', 'trust root: the AWS Nitro root G1 or a development root').choices(['aws', 'dev']).env('COFFER_ATTESTATION_ROOT').default('aws'))
    .addOption(new Option('--dev-root-cert <pem-file>', 'the development root certificate (with --root dev)').env('COFFER_DEV_ROOT_CERT'))
    .option('--out <file>', 'write the verified certificate here (PEM), to pin: curl --cacert, AWS_CA_BUNDLE, rclone --ca-cert')
    .addOption(jsonOption())
    .action(async (opts: VerifyFlags) => {
      if (!opts.expectPcr0) throw new CofferError(ErrorCode.INVALID_ARGUMENT, '--expect-pcr0 (or COFFER_EXPECT_PCR0) is required: the measurement you trust');
      const { verifyGateway } = await import('../../client/gateway-verify.js');
      const v = await verifyGateway({
        server: opts.server, expectPcr0: opts.expectPcr0, root: await gatewayTrustRoot(opts.root, opts.devRootCert), allowDebugMode: opts.allowDebugMode === true,
      });
      if (opts.out) await writeFile(opts.out, v.certPem, { mode: 0o644 });
      print(opts, { server: opts.server, pcr0: v.pcr0, spkiSha256: v.spkiSha256, timestamp: v.document.timestamp.toISOString(), certificate: opts.out ?? null }, () =>
        [`verified: ${opts.server} runs PCR0 ${v.pcr0}`, `TLS key SHA-256 ${v.spkiSha256} is bound into its attestation document`, opts.out ? `certificate written to ${opts.out}` : ''].filter(Boolean).join('\n'));
    });
}
