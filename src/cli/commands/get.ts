// `coffer get VAULT_PATH LOCAL`: downloads, verifies every chunk, and only then renames into place.
import type { Command } from 'commander';
import { downloadFile } from '../../client/download.js';
import { dataKeys, withClient, withKeys, withServer, type KeyFlags, type ServerFlags } from '../connect.js';
import { jsonOption } from '../options.js';
import { print } from '../output.js';
import { formatBytes, progressBar } from '../progress.js';

interface GetFlags extends ServerFlags, KeyFlags {
  force?: boolean;
  json?: boolean;
  concurrency: string;
}

export function register(program: Command): void {
  const cmd = program
    .command('get')
    .description('download a file, verify every chunk, then write it (nothing is left behind on failure)')
    .argument('<path>', 'vault path')
    .argument('<local>', 'local destination file or directory')
    .option('-f, --force', 'replace an existing local file')
    .option('--concurrency <n>', 'chunks in flight', '4')
    .addOption(jsonOption());
  withKeys(withServer(cmd)).action(async (vaultPath: string, local: string, opts: GetFlags) => {
    const keys = await dataKeys(opts);
    try {
      await withClient(opts, async (client) => {
        const node = await client.stat(vaultPath);
        const bar = progressBar(`get ${node.name}`, node.size);
        const result = await downloadFile(client, vaultPath, local, {
          keys,
          overwrite: opts.force === true,
          concurrency: Number(opts.concurrency),
          onProgress: (n) => bar.add(n),
        });
        bar.done();
        print(opts, { path: result.node.path, destination: result.destination, size: result.size, chunkCount: result.chunkCount, blobId: result.node.blobId }, () => `${result.destination}: ${formatBytes(result.size)} verified`);
      }, Number(opts.concurrency));
    } finally {
      keys.close?.();
    }
  });
}
