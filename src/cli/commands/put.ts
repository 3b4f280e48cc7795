// `coffer put LOCAL VAULT_PATH`: seals a local file on this machine and uploads it; the path appears at commit.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_TREE_CONCURRENCY } from '../../client/tree-transfer.js';
import { BATCH_FILES } from '../../client/file-batcher.js';
import { runTreeCommand, treeConcurrency } from '../tree-command.js';
import { uploadFile, uploadStream } from '../../client/upload.js';
import { KeyFileDataKeys, type DataKeyProvider } from '../../client/data-keys.js';
import type { VaultClient } from '../../client/vault-client.js';
import { UploadJournal } from '../../client/upload-journal.js';
import { CofferError, ErrorCode, isCofferError } from '../../errors.js';
import { dataKeys, joinVaultPath, vaultPathArg, withClient, withKeys, withServer, type KeyFlags, type ServerFlags } from '../connect.js';
import { intFlag, jsonOption } from '../options.js';
import { print } from '../output.js';
import { gatewayClientFor } from '../gateway-connect.js';
import type { GatewayClient } from '../../client/gateway-client.js';
import { formatBytes, progressBar } from '../progress.js';
import { abandonHintOnSignal, resumeHintOnSignal } from '../interrupt.js';

interface PutFlags extends ServerFlags, KeyFlags {
  recursive?: boolean;
  resume?: string;
  force?: boolean;
  json?: boolean;
  concurrency?: string;
  checksum?: boolean;
  verbose?: boolean;
  batchFiles?: string;
}

export function register(program: Command): void {
  const cmd = program
    .command('put')
    .description('seal a local file and upload it to the vault (a trailing / or an existing directory keeps the file name)')
    .argument('<local>', 'local file to upload, or - for standard input (committed only when it ends cleanly)')
    .argument('<path>', 'vault path')
    .option('-f, --force', 'replace an existing file')
    .option('-r, --recursive', 'upload a local directory tree into the vault directory PATH (existing files are skipped without --force)')
    .option('--concurrency <n>', `chunks in flight (default 4); with -r, files in flight (default ${DEFAULT_TREE_CONCURRENCY})`)
    .option('--batch-files <n>', `with -r: files up to 1 MiB sent per request (1..1000, default ${BATCH_FILES})`)
    .option('--checksum', 'with -r: a file already in the vault is the same only if its bytes are (default: same size, not modified since)')
    .option('-v, --verbose', 'with -r: name every file')
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
      if (local === '-' && !opts.recursive) {
        await withClient(opts, (client) => putStdin(client, target, keys, opts), intFlag('--concurrency', opts.concurrency ?? '4', 1, 64));
        return;
      }
      const size = (await stat(local).catch(() => null))?.size ?? 0;
      await withClient(opts, async (client) => {
        if (opts.recursive) {
          await runTreeCommand('put', client, local, vaultPathArg(target), opts, {
            keys, concurrency: treeConcurrency(opts), batchFiles: intFlag('--batch-files', opts.batchFiles ?? String(BATCH_FILES), 1, 1000),
            journalFor: journal && ((vaultPath, localPath) => journal.recordFor(opts.server, vaultPath, localPath)),
          }, `coffer put -r ${shellQuote(local)} ${shellQuote(target)}`);
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
            concurrency: intFlag('--concurrency', opts.concurrency ?? '4', 1, 64),
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
      }, opts.recursive ? treeConcurrency(opts) : intFlag('--concurrency', opts.concurrency ?? '4', 1, 64));
    } finally {
      keys.close?.();
    }
  });
}

/**
 * `put - PATH`: seals standard input as it arrives (size unknown up front, memory flat) and commits only when the
 * input ended cleanly; an upload that fails is dropped (a pipe cannot be read again, so there is nothing to resume).
 */
async function putStdin(client: VaultClient, target: string, keys: DataKeyProvider, opts: PutFlags): Promise<void> {
  if (opts.resume) throw new CofferError(ErrorCode.INVALID_ARGUMENT, '--resume needs a file: standard input cannot be read again');
  const existing = target.endsWith('/') ? null : await client.stat(target).catch((e: unknown) => (isCofferError(e, 'NOT_FOUND') ? null : Promise.reject(e)));
  if (target.endsWith('/') || existing?.type === 'dir') {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `put - needs the file's vault path, not a directory (${target}): standard input has no name`);
  }
  let blobId: string | null = null;
  const interrupt = abandonHintOnSignal();
  try {
    const r = await uploadStream(client, process.stdin, null, {
      path: target, keys, overwrite: opts.force === true, concurrency: intFlag('--concurrency', opts.concurrency ?? '4', 1, 64),
      onUpload: (id) => {
        blobId = id;
        interrupt.onUpload(id);
      },
    });
    print(opts, { path: r.node.path, blobId: r.blobId, size: r.size, chunkCount: r.chunkCount }, () => `${r.node.path}: ${formatBytes(r.size)} from standard input in ${r.chunkCount} chunk(s), blob ${r.blobId}`);
  } catch (e) {
    if (blobId !== null) await client.abort(blobId).catch(() => undefined);
    const err = isCofferError(e) ? e : null;
    // the upload's resume hint does not apply to a pipe
    const message = (err?.message ?? (e instanceof Error ? e.message : String(e))).replace(/; the upload is kept: resume it with --resume \S+$/, '');
    throw new CofferError(err?.code ?? ErrorCode.INTERNAL, `${message} (nothing was committed)`, { cause: e });
  } finally {
    interrupt.dispose();
  }
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
