// `coffer put LOCAL VAULT_PATH`: seals a local file on this machine and uploads it; the path appears at commit.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { uploadTree } from '../../client/tree-transfer.js';
import { uploadFile } from '../../client/upload.js';
import { KeyFileDataKeys } from '../../client/data-keys.js';
import { UploadJournal } from '../../client/upload-journal.js';
import { CofferError, ErrorCode, isCofferError } from '../../errors.js';
import { dataKeys, joinVaultPath, vaultPathArg, withClient, withKeys, withServer, type KeyFlags, type ServerFlags } from '../connect.js';
import { intFlag, jsonOption } from '../options.js';
import { print } from '../output.js';
import { gatewayClientFor } from '../gateway-connect.js';
import type { GatewayClient } from '../../client/gateway-client.js';
import { formatBytes, progressBar } from '../progress.js';
import { resumeHintOnSignal } from '../interrupt.js';

interface PutFlags extends ServerFlags, KeyFlags {
  recursive?: boolean;
  resume?: string;
  force?: boolean;
  json?: boolean;
  concurrency: string;
}

export function register(program: Command): void {
  const cmd = program
    .command('put')
    .description('seal a local file and upload it to the vault (a trailing / or an existing directory keeps the file name)')
    .argument('<local>', 'local file to upload')
    .argument('<path>', 'vault path')
    .option('-f, --force', 'replace an existing file')
    .option('-r, --recursive', 'upload a local directory tree into the vault directory PATH (existing files are skipped without --force)')
    .option('--concurrency <n>', 'chunks in flight', '4')
    .option('--resume <blob>', 'continue an interrupted upload of the same, unchanged file (sends only missing chunks); the same put run again does this by itself')
    .addOption(jsonOption());
  withKeys(withServer(cmd)).action(async (local: string, target: string, opts: PutFlags) => {
    const gateway = await gatewayClientFor(opts);
    if (gateway) return putThroughGateway(gateway, local, target, opts);
    const keys = await dataKeys(opts);
    // unfinished uploads, so that the same put run again after a kill or a reboot continues where it stopped;
    // key-file mode only (in KMS mode only enclaves may open a blob's key, so no client can continue an upload)
    const journal = keys instanceof KeyFileDataKeys ? new UploadJournal() : undefined;
    try {
      const size = (await stat(local).catch(() => null))?.size ?? 0;
      await withClient(opts, async (client) => {
        if (opts.recursive) {
          const r = await uploadTree(client, local, vaultPathArg(target), {
            keys, overwrite: opts.force === true, concurrency: intFlag('--concurrency', opts.concurrency, 1, 64),
            journalFor: journal && ((vaultPath, localPath) => journal.recordFor(opts.server, vaultPath, localPath)),
            onFile: (e) => { if (!opts.json) process.stdout.write(`${e.action === 'copied' ? '' : 'skipped '}${e.path}${e.reason ? ` (${e.reason})` : ''}\n`); },
          });
          print(opts, r, () => `${r.files} file(s), ${formatBytes(r.bytes)}${r.skipped ? `, ${r.skipped} skipped` : ''}`);
          return;
        }
        let vaultPath = target;
        if (target.endsWith('/')) vaultPath = joinVaultPath(target, path.basename(local));
        else {
          const existing = await client.stat(target).catch((e: unknown) => (isCofferError(e, 'NOT_FOUND') ? null : Promise.reject(e)));
          if (existing?.type === 'dir') vaultPath = joinVaultPath(target, path.basename(local));
        }
        const bar = progressBar(`put ${path.basename(local)}`, size);
        const interrupt = resumeHintOnSignal((blobId) => `coffer put --resume ${blobId} ${shellQuote(local)} ${shellQuote(vaultPath)}`);
        let result;
        try {
          result = await uploadFile(client, local, {
            path: vaultPath,
            keys,
            overwrite: opts.force === true,
            concurrency: intFlag('--concurrency', opts.concurrency, 1, 64),
            resume: opts.resume,
            journal: journal?.recordFor(opts.server, vaultPath, local),
            onProgress: (n) => bar.add(n),
            onUpload: interrupt.onUpload,
          });
        } finally {
          interrupt.dispose();
        }
        bar.done();
        const r = result;
        const continued = r.resumed ? ` (continued: ${r.skippedChunks} chunk(s) were already stored)` : '';
        print(opts, { path: r.node.path, blobId: r.blobId, size: r.size, chunkCount: r.chunkCount, skippedChunks: r.skippedChunks, resumed: r.resumed }, () => `${r.node.path}: ${formatBytes(r.size)} in ${r.chunkCount} chunk(s), blob ${r.blobId}${continued}`);
      }, intFlag('--concurrency', opts.concurrency, 1, 64));
    } finally {
      keys.close?.();
    }
  });
}

/** A word safe to paste into a POSIX shell. */
function shellQuote(word: string): string {
  return /^[A-Za-z0-9._/:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** put against an enclave gateway: the file goes as plaintext over the attested TLS and is sealed inside. */
async function putThroughGateway(gateway: GatewayClient, local: string, target: string, opts: PutFlags): Promise<void> {
  try {
    if (opts.recursive || opts.resume) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'put -r and --resume are not available through the enclave gateway yet');
    let vaultPath = target;
    if (target.endsWith('/')) vaultPath = joinVaultPath(target, path.basename(local));
    else {
      const existing = await gateway.vault.stat(target).catch((e: unknown) => (isCofferError(e, 'NOT_FOUND') ? null : Promise.reject(e)));
      if (existing?.type === 'dir') vaultPath = joinVaultPath(target, path.basename(local));
    }
    const node = await gateway.putFile(local, vaultPath, { overwrite: opts.force === true });
    print(opts, { path: node.path, size: node.size, blobId: node.blobId, gateway: true }, () => `${node.path} (${formatBytes(node.size)}, sealed in the enclave)`);
  } finally {
    gateway.close();
  }
}
