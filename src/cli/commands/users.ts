// `coffer users list|disable|enable`: the users the service has seen, and switching one off or on (admin
// tokens only; the service checks). A disabled user's valid token is refused on every request.
import type { Command } from 'commander';
import { withClient, withServer, type ServerFlags } from '../connect.js';
import { jsonOption } from '../options.js';
import { print } from '../output.js';

type Flags = ServerFlags & { json?: boolean };

export function register(program: Command): void {
  const users = program.command('users').description('users the service has seen; disable or enable one (admin token)');
  withServer(users.command('list').description('every user the service has recorded').addOption(jsonOption())).action(async (opts: Flags) => {
    await withClient(opts, async (client) => {
      const list = (await client.users()).users;
      print(opts, list, () => list.map((u) => `${u.name}${u.disabled ? '  (disabled)' : ''}`).join('\n'));
    });
  });
  for (const [name, disabled] of [['disable', true], ['enable', false]] as const) {
    withServer(users.command(name)
      .description(disabled ? 'refuse every request of this user, whatever their token (within 30 s on other replicas)' : 'let a disabled user in again')
      .argument('<user>', 'user name')
      .addOption(jsonOption())).action(async (user: string, opts: Flags) => {
      await withClient(opts, async (client) => {
        const u = await client.setUserDisabled(user, disabled);
        print(opts, u, () => `${u.name} is ${u.disabled ? 'disabled' : 'enabled'}`);
      });
    });
  }
}
