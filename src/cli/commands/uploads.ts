// `coffer uploads list|abort`: uploads in progress keep their chunks for the grace period (24 h) so that a put
// stopped by a full disk, a network failure or a kill can be resumed. `list` shows them with the space they
// hold; `abort` drops them now (the service frees their chunks in a GC pass it starts at once).
import type { Command } from 'commander';
import { CofferError, ErrorCode } from '../../errors.js';
import { withClient, withServer, type ServerFlags } from '../connect.js';
import { jsonOption } from '../options.js';
import { print } from '../output.js';
import { formatBytes } from '../progress.js';

type Flags = ServerFlags & { json?: boolean; all?: boolean };

export function register(program: Command): void {
  const uploads = program.command('uploads').description('uploads in progress (kept 24 h for --resume): list them, or abort them to free their space now');
  withServer(uploads.command('list')
    .description('your uploads in progress and the space each holds')
    .option('--all', 'everyone\'s (admin token)')
    .addOption(jsonOption())).action(async (opts: Flags) => {
    await withClient(opts, async (client) => {
      const list = (await client.uploads(opts.all === true)).uploads;
      print(opts, list, () => list.length === 0 ? 'no uploads in progress'
        : list.map((u) => `${u.blobId}  ${formatBytes(u.storedBytes).padStart(10)}  ${u.owner}  ${u.updatedAt}  ${u.path}`).join('\n'));
    });
  });
  withServer(uploads.command('abort')
    .description('drop uploads in progress; their chunks are freed within seconds')
    .argument('[blob...]', 'blob ids from coffer uploads list')
    .option('--all', 'all of your uploads in progress')
    .addOption(jsonOption())).action(async (blobs: string[], opts: Flags) => {
    if ((blobs.length === 0) === (opts.all !== true)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'name the uploads to abort, or give --all (not both)');
    await withClient(opts, async (client) => {
      const ids = opts.all ? (await client.uploads(false)).uploads.map((u) => u.blobId) : blobs;
      for (const id of ids) await client.abort(id);
      print(opts, { aborted: ids }, () => (ids.length === 0 ? 'no uploads in progress' : `aborted ${ids.length} upload(s): ${ids.join(' ')}`));
    });
  });
}
