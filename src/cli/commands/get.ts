// `coffer get VAULT_PATH LOCAL`: downloads, verifies every chunk, and only then renames into place.
import type { Command } from 'commander';
import { downloadFile, verifyFile } from '../../client/download.js';
import { streamFile } from '../../client/download-stream.js';
import { DEFAULT_TREE_CONCURRENCY } from '../../client/tree-transfer.js';
import { runTreeCommand, treeConcurrency } from '../tree-command.js';
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
  concurrency?: string;
  checksum?: boolean;
  fsync?: boolean;
  verbose?: boolean;
}

export function register(program: Command): void {
  const cmd = program
    .command('get')
    .description('download a file, verify every chunk, then write it (nothing is left behind on failure)')
    .argument('<path>', 'vault path', vaultPathArg)
    .argument('[local]', 'local destination file or directory (default: the current directory, under the vault name); - writes to standard output')
    .option('--verify-only', 'download, authenticate and open every chunk, but write nothing')
    .option('-r, --recursive', 'copy a vault directory tree into the local directory LOCAL (existing files are skipped without --force)')
    .option('-f, --force', 'replace an existing local file')
    .option('--concurrency <n>', `chunks in flight (default 4); with -r, files in flight (default ${DEFAULT_TREE_CONCURRENCY})`)
    .option('--checksum', 'with -r: a local file is the same only if its bytes are (default: same size and modification time)')
    .option('--fsync', 'with -r: fsync every file before it takes its name (durable through a power loss; slower). Without it, as restic restore and rsync, a file is still renamed into place only when whole')
    .option('-v, --verbose', 'with -r: name every file')
    .addOption(jsonOption())
    .addHelpText('after', [
      '',
      'With - as LOCAL the plaintext goes to standard output in file order, each chunk authenticated before any of its',
      'bytes is written. A pipe cannot take bytes back: if a later chunk fails verification, what came before it has',
      'already been written, and only the exit status (non-zero, e.g. 6 for CHUNK_AUTH_FAILED) says the output is',
      'incomplete. Check it (set -o pipefail) before trusting the output; without -, nothing is written on failure.',
    ].join('\n'));
  withKeys(withServer(cmd)).action(async (vaultPath: string, localArg: string | undefined, opts: GetFlags) => {
    // like cp and scp: no destination means the current directory, under the vault name
    const local = localArg ?? (opts.verifyOnly || opts.recursive ? undefined : '.');
    const gateway = await gatewayClientFor(opts);
    if (gateway) {
      try {
        if (opts.recursive || opts.verifyOnly || local === '-') throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'get -r, get PATH - and --verify-only are not available through the enclave gateway yet');
        const r = await gateway.getFile(vaultPath, local as string, { overwrite: opts.force === true });
        print(opts, { path: vaultPath, destination: r.destination, size: r.size, gateway: true }, () => `${r.destination} (${formatBytes(r.size)}, opened in the enclave)`);
      } finally {
        gateway.close();
      }
      return;
    }
    if (local === '-' && !opts.recursive && !opts.verifyOnly) {
      const keys = await dataKeys(opts);
      try {
        await withClient(opts, async (client) => {
          await streamFile(client, vaultPath, process.stdout, { keys, concurrency: intFlag('--concurrency', opts.concurrency ?? '4', 1, 64) });
        }, intFlag('--concurrency', opts.concurrency ?? '4', 1, 64));
      } finally {
        keys.close?.();
      }
      return;
    }
    const keys = await dataKeys(opts);
    const interrupt = removeTempFileOnSignal();
    try {
      await withClient(opts, async (client) => {
        if (opts.recursive) {
          if (!local || opts.verifyOnly) throw new CofferError(ErrorCode.INVALID_ARGUMENT, '-r needs a local destination directory (and no --verify-only)');
          interrupt.dispose(); // the tree command removes all of its temporary files itself
          await runTreeCommand('get', client, vaultPath, local, opts, {
            keys, concurrency: treeConcurrency(opts), fsync: opts.fsync === true,
          }, `coffer get -r ${vaultPath} ${local}`);
          return;
        }
        let bar = progressBar('', 0);
        const onStart = (node: NodeInfo): void => {
          bar = progressBar(`get ${node.name}`, node.size);
        };
        const concurrency = intFlag('--concurrency', opts.concurrency ?? '4', 1, 64);
        const onProgress = (n: number): void => bar.add(n);
        const result = opts.verifyOnly
          ? await verifyFile(client, vaultPath, { keys, concurrency, onStart, onProgress })
          : await downloadFile(client, vaultPath, local as string, { keys, overwrite: opts.force === true, concurrency, onStart, onProgress, onTempFile: interrupt.onTempFile });
        bar.done();
        print(opts, { path: result.node.path, destination: result.destination, size: result.size, chunkCount: result.chunkCount, blobId: result.node.blobId }, () => `${result.destination || result.node.path}: ${formatBytes(result.size)} verified`);
      }, opts.recursive ? treeConcurrency(opts) : intFlag('--concurrency', opts.concurrency ?? '4', 1, 64));
    } finally {
      interrupt.dispose();
      keys.close?.();
    }
  });
}
