// `coffer rm PATH [-r]`: removes a file, an empty directory, or (with -r) a whole subtree.
import type { Command } from 'commander';
import { vaultPathArg, withClient, withServer, type ServerFlags } from '../connect.js';
import { jsonOption } from '../options.js';
import { print } from '../output.js';

export function register(program: Command): void {
  const cmd = program
    .command('rm')
    .description('remove a file or directory')
    .argument('<path>', 'vault path', vaultPathArg)
    .option('-r, --recursive', 'remove a non-empty directory and everything below it')
    .addOption(jsonOption());
  withServer(cmd).action(async (vaultPath: string, opts: ServerFlags & { json?: boolean; recursive?: boolean }) => {
    await withClient(opts, async (client) => {
      const res = await client.remove(vaultPath, opts.recursive === true);
      // the service frees the chunk files in a garbage-collection pass, not in the request: say so, or a user
      // watching `df` thinks nothing happened
      print(opts, res, () => `removed ${res.removed} ${res.removed === 1 ? 'entry' : 'entries'}; the service frees their space in a garbage-collection pass it starts within seconds`);
    });
  });
}
