// The subcommands, one file each. Only the module of the command being run is loaded (a `coffer ls` need not
// load the AWS SDK, the database drivers or the HTTP server); help and unknown commands load them all.
import type { Command } from 'commander';

type CommandModule = { register(program: Command): void };

const commands: Record<string, () => Promise<CommandModule>> = {
  dev: () => import('./dev.js'),
  serve: () => import('./serve.js'),
  kms: () => import('./kms.js'),
  token: () => import('./token.js'),
  keygen: () => import('./keygen.js'),
  put: () => import('./put.js'),
  get: () => import('./get.js'),
  ls: () => import('./ls.js'),
  stat: () => import('./stat.js'),
  mkdir: () => import('./mkdir.js'),
  mv: () => import('./mv.js'),
  rm: () => import('./rm.js'),
  keys: () => import('./keys.js'),
  migrate: () => import('./migrate.js'),
  audit: () => import('./audit.js'),
  fsck: () => import('./fsck.js'),
  attestation: () => import('./attestation.js'),
  enclave: () => import('./enclave.js'),
  bench: () => import('./bench.js'),
  share: () => import('./share.js'),
  unshare: () => import('./unshare.js'),
  grants: () => import('./grants.js'),
  whoami: () => import('./whoami.js'),
  users: () => import('./users.js'),
  uploads: () => import('./uploads.js'),
  'access-key': () => import('./access-key.js'),
  net: () => import('./net.js'),
  backup: () => import('./backup.js'),
};

/** True when `name` is one of the subcommands (or `help`). */
export function isCommandName(name: string): boolean {
  return name === 'help' || Object.hasOwn(commands, name);
}

/** Registers the command named in argv, or every command when none (or an unknown one) is named. */
export async function registerCommands(program: Command, argv: readonly string[]): Promise<void> {
  const name = argv.find((a) => !a.startsWith('-'));
  // `coffer --version` alone needs no command (loading them all took 0.39 s against 0.09 s for one)
  if (name === undefined && argv.length > 0 && argv.every((a) => a === '--version' || a === '-V')) return;
  const only = name !== undefined && name !== 'help' ? commands[name] : undefined;
  if (only) {
    (await only()).register(program);
    return;
  }
  for (const load of Object.values(commands)) (await load()).register(program);
}
