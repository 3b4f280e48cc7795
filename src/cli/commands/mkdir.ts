// `coffer mkdir PATH [-p]`: creates a directory.
import type { Command } from 'commander';
import { vaultPathArg, withClient, withServer, type ServerFlags } from '../connect.js';
import { jsonOption } from '../options.js';
import { print } from '../output.js';

export function register(program: Command): void {
  const cmd = program
    .command('mkdir')
    .description('create a directory')
    .argument('<path>', 'vault path', vaultPathArg)
    .option('-p, --parents', 'create missing parents; an existing directory is fine')
    .addOption(jsonOption());
  withServer(cmd).action(async (vaultPath: string, opts: ServerFlags & { json?: boolean; parents?: boolean }) => {
    await withClient(opts, async (client) => {
      const node = await client.mkdir(vaultPath, opts.parents === true);
      print(opts, node, () => '');
    });
  });
}
