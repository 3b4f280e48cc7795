// `coffer unshare PATH --user NAME`: removes the grant set on PATH for a user (idempotent). Grants inherited
// from a parent directory stay: `coffer grants PATH` shows where each one is set.
import type { Command } from 'commander';
import { vaultPathArg, withClient, withServer, type ServerFlags } from '../connect.js';
import { jsonOption } from '../options.js';
import { print } from '../output.js';

export function register(program: Command): void {
  const cmd = program
    .command('unshare')
    .description('remove the grant set on PATH for a user (grants set on a parent directory still apply; see coffer grants)')
    .argument('<path>', 'vault path', vaultPathArg)
    .requiredOption('--user <name>', 'whose grant to remove')
    .addOption(jsonOption());
  withServer(cmd).action(async (vaultPath: string, opts: ServerFlags & { user: string; json?: boolean }) => {
    await withClient(opts, async (client) => {
      await client.deleteGrant(vaultPath, opts.user);
      const still = (await client.grants(vaultPath, true)).grants.filter((g) => g.user === opts.user);
      print(opts, { path: vaultPath, user: opts.user, deleted: true, stillInherited: still }, () =>
        still.length === 0
          ? `${opts.user} has no grant on ${vaultPath} any more`
          : `removed the grant on ${vaultPath}; ${opts.user} still has ${still.map((g) => `${g.role} from ${g.path}`).join(', ')}`);
    });
  });
}
