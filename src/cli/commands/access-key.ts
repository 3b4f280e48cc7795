// `coffer access-key create|list|revoke`: S3 access keys for a vault user, managed through the enclave gateway
// (an administrator's token, over the attested TLS): the secret is made and sealed inside the enclave
// (enclave/s3/admin-routes.ts) and shown once here. The gateway is trusted through `--ca-cert enclave.pem` (from
// `coffer enclave verify`) or verified here first when COFFER_EXPECT_PCR0 / --expect-pcr0 is set.
import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import type { Command } from 'commander';
import { Option } from 'commander';
import { CofferError, ErrorCode } from '../../errors.js';
import { verifiedGateway } from '../gateway-connect.js';
import { jsonOption, serverOption, tokenOption } from '../options.js';
import { print } from '../output.js';

interface GatewayFlags {
  server: string;
  token?: string;
  caCert?: string;
  expectPcr0?: string;
  json?: boolean;
}

/** The certificate to pin: the verified gateway's, or the file given. Throws INVALID_ARGUMENT without either. */
async function pinnedCa(flags: GatewayFlags): Promise<string> {
  if (!flags.server.startsWith('https://')) throw new CofferError(ErrorCode.INVALID_ARGUMENT, '--server must be the enclave gateway (https://): access keys are made inside the enclave');
  const verified = await verifiedGateway(flags.server, flags.expectPcr0);
  if (verified) return verified.ca;
  if (!flags.caCert) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'pin the gateway: --ca-cert enclave.pem (from coffer enclave verify) or --expect-pcr0 / COFFER_EXPECT_PCR0');
  return readFile(flags.caCert, 'utf8').catch((e: unknown) => {
    throw new CofferError(ErrorCode.NOT_FOUND, `cannot read ${flags.caCert}`, { cause: e });
  });
}

/** One JSON request to the gateway's /v1/s3 routes. Throws the gateway's error as a CofferError with its code. */
async function call(flags: GatewayFlags, method: string, route: string, body?: unknown): Promise<Record<string, unknown>> {
  if (!flags.token) throw new CofferError(ErrorCode.UNAUTHENTICATED, 'no token: pass --token or set COFFER_TOKEN (an administrator\'s)');
  const ca = await pinnedCa(flags);
  const url = new URL(`/v1/s3${route}`, flags.server);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method, ca, headers: { authorization: `Bearer ${flags.token}`, ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}) },
    }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => {
        let json: Record<string, unknown>;
        try {
          json = JSON.parse(Buffer.concat(parts).toString('utf8')) as Record<string, unknown>;
        } catch (e) {
          reject(new CofferError(ErrorCode.INTERNAL, `the gateway answered ${res.statusCode} without JSON`, { cause: e }));
          return;
        }
        if ((res.statusCode ?? 500) < 300) return resolve(json);
        const err = (json.error ?? {}) as { code?: string; message?: string };
        const code = Object.values(ErrorCode).find((c) => c === err.code) ?? ErrorCode.INTERNAL;
        reject(new CofferError(code, err.message ?? `HTTP ${res.statusCode}`));
      });
      res.on('error', reject);
    });
    req.on('error', (e) => reject(new CofferError(ErrorCode.UNAVAILABLE, `cannot reach the gateway ${flags.server}: ${e.message}`, { cause: e })));
    req.end(payload);
  });
}

function gatewayOptions(c: Command): Command {
  return c
    .addOption(serverOption())
    .addOption(tokenOption())
    .addOption(new Option('--ca-cert <file>', "the gateway's certificate (coffer enclave verify --out)").env('COFFER_CA_CERT'))
    .addOption(new Option('--expect-pcr0 <hex>', 'verify the gateway first (measurement)').env('COFFER_EXPECT_PCR0'))
    .addOption(jsonOption());
}

export function register(program: Command): void {
  const cmd = program.command('access-key').description('S3 access keys (for the AWS CLI, boto3, rclone against the enclave\'s S3 endpoint)');
  gatewayOptions(cmd.command('create').description('create an access key for a user, inside the enclave; the secret is shown once'))
    .requiredOption('--user <name>', 'vault user the key acts as (their grants apply)')
    .action(async (opts: GatewayFlags & { user: string }) => {
      const k = await call(opts, 'POST', '/access-keys', { user: opts.user });
      print(opts, k, () => `export AWS_ACCESS_KEY_ID=${String(k.accessKeyId)}\nexport AWS_SECRET_ACCESS_KEY=${String(k.secretAccessKey)}\n# user ${String(k.user)}; the secret is not shown again`);
    });
  gatewayOptions(cmd.command('list').description('list access keys (never their secrets)'))
    .option('--user <name>', 'only this user\'s keys')
    .action(async (opts: GatewayFlags & { user?: string }) => {
      const r = await call(opts, 'GET', `/access-keys${opts.user ? `?user=${encodeURIComponent(opts.user)}` : ''}`);
      const keys = r.keys as Array<{ id: string; user: string; createdAt: string }>;
      print(opts, { keys }, () => keys.map((k) => `${k.id}  ${k.user}  ${k.createdAt}`).join('\n'));
    });
  gatewayOptions(cmd.command('revoke <id>').description('revoke an access key (refused from the next request on)'))
    .action(async (id: string, opts: GatewayFlags) => {
      await call(opts, 'DELETE', `/access-keys/${encodeURIComponent(id)}`);
      print(opts, { revoked: id }, () => `revoked ${id}`);
    });
}
