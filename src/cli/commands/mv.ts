// `coffer mv FROM TO`: moves or renames a file or directory (atomically, one metadata write).
import type { Command } from 'commander';
import { joinVaultPath, vaultPathArg, withClient, withServer, type ServerFlags } from '../connect.js';
import { jsonOption } from '../options.js';
import { print } from '../output.js';

export function register(program: Command): void {
  const cmd = program
    .command('mv')
    .description('move or rename a file or directory')
    .argument('<from>', 'vault path', vaultPathArg)
    .argument('<to>', 'new vault path (ending in / : into that directory, keeping the name)')
    .option('-f, --force', 'replace an existing file at the destination')
    .addOption(jsonOption());
  withServer(cmd).action(async (from: string, to: string, opts: ServerFlags & { json?: boolean; force?: boolean }) => {
    await withClient(opts, async (client) => {
      const dest = to.length > 1 && to.endsWith('/') ? joinVaultPath(to, from.slice(from.lastIndexOf('/') + 1)) : to;
      const node = await client.move(from, dest, opts.force === true);
      print(opts, node, () => '');
    });
  });
}
