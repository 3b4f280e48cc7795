// `coffer token --user NAME`: mints a development bearer token signed by the data directory's dev key.
import { statSync } from 'node:fs';
import type { Command } from 'commander';
import { mintDevToken } from '../../api/auth/index.js';
import { CofferError, ErrorCode } from '../../errors.js';
import { dataDirOption, intFlag, jsonOption } from '../options.js';
import { print } from '../output.js';

export function register(program: Command): void {
  program
    .command('token')
    .description('mint a development token (signed with the data directory\'s development key)')
    .addOption(dataDirOption())
    .requiredOption('--user <name>', 'user name (the token subject)')
    .option('--admin', 'grant admin on the whole vault')
    .option('--ttl <seconds>', 'lifetime in seconds', '86400')
    .addOption(jsonOption())
    .action(async (opts: { dataDir: string; user: string; admin?: boolean; ttl: string; json?: boolean }) => {
      const ttlSeconds = intFlag('--ttl', opts.ttl, 60, 365 * 24 * 3600);
      // the key is made on first use, so a mistyped directory would get a key of its own and a token that the
      // service refuses: the directory must exist (`coffer serve` or `coffer dev` creates it)
      if (opts.dataDir.trim() === '' || !statSync(opts.dataDir, { throwIfNoEntry: false })?.isDirectory()) {
        throw new CofferError(ErrorCode.NOT_FOUND, `no data directory ${JSON.stringify(opts.dataDir)} (check --data-dir or COFFER_DATA_DIR; coffer serve creates it)`);
      }
      const token = await mintDevToken(opts.dataDir, { user: opts.user, admin: opts.admin === true, ttlSeconds });
      print(opts, { token, user: opts.user, admin: opts.admin === true, expiresIn: ttlSeconds }, () => token);
    });
}
