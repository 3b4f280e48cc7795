// `coffer mv FROM TO`: moves or renames a file or directory (atomically, one metadata write).
import type { Command } from 'commander';
import { isCofferError } from '../../errors.js';
import { joinVaultPath, vaultPathArg, withClient, withServer, type ServerFlags } from '../connect.js';
import { jsonOption } from '../options.js';
import { print } from '../output.js';

export function register(program: Command): void {
  const cmd = program
    .command('mv')
    .description('move or rename a file or directory')
    .argument('<from>', 'vault path', vaultPathArg)
    .argument('<to>', 'new vault path, or an existing directory to move into (keeping the name)')
    .option('-f, --force', 'replace an existing file at the destination')
    .addOption(jsonOption());
  withServer(cmd).action(async (from: string, to: string, opts: ServerFlags & { json?: boolean; force?: boolean }) => {
    await withClient(opts, async (client) => {
      // like mv(1): into an existing directory, keeping the name (a trailing / says so without asking)
      const name = from.slice(from.lastIndexOf('/') + 1);
      let dest = to.length > 1 && to.endsWith('/') ? joinVaultPath(to, name) : to;
      if (dest === to && dest !== from) {
        const existing = await client.stat(to).catch((e: unknown) => (isCofferError(e, 'NOT_FOUND') ? null : Promise.reject(e)));
        if (existing?.type === 'dir') dest = joinVaultPath(to, name);
      }
      const node = await client.move(from, dest, opts.force === true);
      print(opts, node, () => '');
    });
  });
}
