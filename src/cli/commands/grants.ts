// `coffer grants PATH`: who has which role on PATH, including grants inherited from parent directories
// (marked with the directory they are set on). Needs admin on PATH.
import type { Command } from 'commander';
import { vaultPathArg, withClient, withServer, type ServerFlags } from '../connect.js';
import { jsonOption } from '../options.js';
import { print } from '../output.js';

export function register(program: Command): void {
  const cmd = program
    .command('grants')
    .description('list the grants that apply to PATH, inherited ones marked (needs admin on PATH)')
    .argument('<path>', 'vault path', vaultPathArg)
    .addOption(jsonOption());
  withServer(cmd).action(async (vaultPath: string, opts: ServerFlags & { json?: boolean }) => {
    await withClient(opts, async (client) => {
      const { grants } = await client.grants(vaultPath, true);
      print(opts, grants, () =>
        grants.length === 0
          ? `no grants on ${vaultPath} (only its owner, token admins and the service's default role have access)`
          : grants.map((g) => `${g.role.padEnd(5)} ${g.user}${g.inherited ? `  (inherited from ${g.path})` : ''}`).join('\n'));
    });
  });
}
