// `coffer whoami`: who the service takes the token for, whether it is an admin token, and what every user
// may do without a grant (the service's default role on /; in development mode, the user's home).
import type { Command } from 'commander';
import { withClient, withServer, type ServerFlags } from '../connect.js';
import { jsonOption } from '../options.js';
import { print } from '../output.js';

export function register(program: Command): void {
  const cmd = program
    .command('whoami')
    .description('the user the service takes your token for, and what it may do')
    .addOption(jsonOption());
  withServer(cmd).action(async (opts: ServerFlags & { json?: boolean }) => {
    await withClient(opts, async (client) => {
      const me = await client.whoami();
      const home = me.home ?? null;
      print(opts, { ...me, home }, () => [
        `${me.user}${me.admin ? ' (admin token: every permission on the whole vault)' : ''}`,
        home ? `home: ${home} (yours alone unless you share it)` : '',
        `everyone's role on /: ${me.defaultRootRole}`,
      ].filter(Boolean).join('\n'));
    });
  });
}
