// `coffer share PATH --user NAME --role read|write|admin`: gives a user a role on a file or directory (and,
// for a directory, everything below it). Needs admin on PATH (its owner has it); the service decides.
import { Option, type Command } from 'commander';
import { vaultPathArg, withClient, withServer, type ServerFlags } from '../connect.js';
import { jsonOption } from '../options.js';
import { print } from '../output.js';

export function register(program: Command): void {
  const cmd = program
    .command('share')
    .description('give a user a role on a file or directory and everything below it (needs admin on PATH; its owner has it)')
    .argument('<path>', 'vault path', vaultPathArg)
    .requiredOption('--user <name>', 'who gets the role (the token subject)')
    .addOption(new Option('--role <role>', 'read: stat, ls, get; write: also put, mkdir, mv, rm inside; admin: also share').choices(['read', 'write', 'admin']).default('read'))
    .addOption(jsonOption());
  withServer(cmd).action(async (vaultPath: string, opts: ServerFlags & { user: string; role: string; json?: boolean }) => {
    await withClient(opts, async (client) => {
      const grant = await client.putGrant(vaultPath, opts.user, opts.role);
      print(opts, { path: vaultPath, ...(grant as object) }, () => `${opts.user} now has ${opts.role} on ${vaultPath}`);
    });
  });
}
