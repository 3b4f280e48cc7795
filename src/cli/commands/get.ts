// `coffer get VAULT_PATH LOCAL`: downloads, verifies every chunk, and only then renames into place.
import type { Command } from 'commander';
import { downloadFile, verifyFile } from '../../client/download.js';
import { downloadTree } from '../../client/tree-transfer.js';
import type { NodeInfo } from '../../client/vault-client.js';
import { CofferError, ErrorCode } from '../../errors.js';
import { dataKeys, vaultPathArg, withClient, withKeys, withServer, type KeyFlags, type ServerFlags } from '../connect.js';
import { intFlag, jsonOption } from '../options.js';
import { print } from '../output.js';
import { gatewayClientFor } from '../gateway-connect.js';
import { formatBytes, progressBar } from '../progress.js';
import { removeTempFileOnSignal } from '../interrupt.js';

interface GetFlags extends ServerFlags, KeyFlags {
  recursive?: boolean;
  verifyOnly?: boolean;
  force?: boolean;
  json?: boolean;
  concurrency: string;
}

export function register(program: Command): void {
  const cmd = program
    .command('get')
    .description('download a file, verify every chunk, then write it (nothing is left behind on failure)')
    .argument('<path>', 'vault path', vaultPathArg)
    .argument('[local]', 'local destination file or directory')
    .option('--verify-only', 'download, authenticate and open every chunk, but write nothing')
    .option('-r, --recursive', 'copy a vault directory tree into the local directory LOCAL (existing files are skipped without --force)')
    .option('-f, --force', 'replace an existing local file')
    .option('--concurrency <n>', 'chunks in flight', '4')
    .addOption(jsonOption());
  withKeys(withServer(cmd)).action(async (vaultPath: string, local: string | undefined, opts: GetFlags) => {
    if (!local && !opts.verifyOnly) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'give a local destination (or --verify-only)');
    const gateway = await gatewayClientFor(opts);
    if (gateway) {
      try {
        if (opts.recursive || opts.verifyOnly) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'get -r and --verify-only are not available through the enclave gateway yet');
        const r = await gateway.getFile(vaultPath, local as string, { overwrite: opts.force === true });
        print(opts, { path: vaultPath, destination: r.destination, size: r.size, gateway: true }, () => `${r.destination} (${formatBytes(r.size)}, opened in the enclave)`);
      } finally {
        gateway.close();
      }
      return;
    }
    const keys = await dataKeys(opts);
    const interrupt = removeTempFileOnSignal();
    try {
      await withClient(opts, async (client) => {
        if (opts.recursive) {
          if (!local || opts.verifyOnly) throw new CofferError(ErrorCode.INVALID_ARGUMENT, '-r needs a local destination directory (and no --verify-only)');
          const r = await downloadTree(client, vaultPath, local, {
            keys, overwrite: opts.force === true, concurrency: intFlag('--concurrency', opts.concurrency, 1, 64), onTempFile: interrupt.onTempFile,
            onFile: (e) => { if (!opts.json) process.stdout.write(`${e.action === 'copied' ? '' : 'skipped '}${e.path}${e.reason ? ` (${e.reason})` : ''}\n`); },
          });
          print(opts, r, () => `${r.files} file(s), ${formatBytes(r.bytes)}${r.skipped ? `, ${r.skipped} skipped` : ''}`);
          return;
        }
        let bar = progressBar('', 0);
        const onStart = (node: NodeInfo): void => {
          bar = progressBar(`get ${node.name}`, node.size);
        };
        const concurrency = intFlag('--concurrency', opts.concurrency, 1, 64);
        const onProgress = (n: number): void => bar.add(n);
        const result = opts.verifyOnly
          ? await verifyFile(client, vaultPath, { keys, concurrency, onStart, onProgress })
          : await downloadFile(client, vaultPath, local as string, { keys, overwrite: opts.force === true, concurrency, onStart, onProgress, onTempFile: interrupt.onTempFile });
        bar.done();
        print(opts, { path: result.node.path, destination: result.destination, size: result.size, chunkCount: result.chunkCount, blobId: result.node.blobId }, () => `${result.destination || result.node.path}: ${formatBytes(result.size)} verified`);
      }, intFlag('--concurrency', opts.concurrency, 1, 64));
    } finally {
      interrupt.dispose();
      keys.close?.();
    }
  });
}
