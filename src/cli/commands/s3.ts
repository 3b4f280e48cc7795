// `coffer s3 serve`: the S3-compatible endpoint for development, beside a storage service sharing its data
// directory (see enclave/s3/dev-endpoint.ts). Prints the endpoint and the certificate clients pin.
import type { Command } from 'commander';
import { startDevS3Endpoint } from '../../../enclave/s3/dev-endpoint.js';
import { parseListen } from '../../config.js';
import { untilSignal } from '../../service.js';
import { dataDirOption, serverOption } from '../options.js';

export function register(program: Command): void {
  const cmd = program.command('s3').description('the S3-compatible endpoint');
  cmd
    .command('serve')
    .description('serve the S3 API (path-style, https with a pinned certificate) over the storage service')
    .addOption(dataDirOption())
    .addOption(serverOption())
    .option('--listen <host:port>', 'address of the S3 listener', '127.0.0.1:7701')
    .action(async (opts: { dataDir: string; server: string; listen: string }) => {
      const endpoint = await startDevS3Endpoint({ dataDir: opts.dataDir, storageUrl: opts.server, listen: parseListen(opts.listen) });
      process.stdout.write([
        `S3 endpoint: ${endpoint.url}  (path-style; certificate to pin: ${endpoint.certFile})`,
        `  keys:   npx coffer access-key create --data-dir ${opts.dataDir} --user alice`,
        `  aws:    AWS_CA_BUNDLE=${endpoint.certFile} aws --endpoint-url ${endpoint.url} s3 ls`,
        `  rclone: rclone --ca-cert ${endpoint.certFile} --s3-provider Other --s3-endpoint ${endpoint.url} --s3-force-path-style …`,
        '',
      ].join('\n'));
      await untilSignal(() => endpoint.close());
    });
}
