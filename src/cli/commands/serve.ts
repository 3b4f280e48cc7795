// `coffer serve`: the storage service alone (untrusted side: sealed chunks, wrapped keys, metadata).
import { Option, type Command } from 'commander';
import { parseListen } from '../../config.js';
import { CofferError, ErrorCode } from '../../errors.js';
import { startService, untilSignal } from '../../service.js';
import type { RootRole } from '../../vault/index.js';
import { dataDirOption, intFlag, listenOption, mongoUriOption } from '../options.js';

interface ServeFlags {
  dataDir: string;
  listen: string;
  mongodbUri?: string;
  defaultRootRole: RootRole;
  jwksUrl?: string;
  issuer?: string;
  audience?: string;
  gcInterval: string;
}

export function register(program: Command): void {
  program
    .command('serve')
    .description('run the storage service (metadata: SQLite in the data dir, or MongoDB with --mongodb-uri)')
    .addOption(dataDirOption())
    .addOption(listenOption('127.0.0.1:7700'))
    .addOption(mongoUriOption())
    .addOption(new Option('--default-root-role <role>', 'role every authenticated user has on /').choices(['none', 'read', 'write']).default('none'))
    .addOption(new Option('--jwks-url <url>', 'verify tokens against this JWKS (else the data dir\'s development key)').env('COFFER_JWKS_URL'))
    .addOption(new Option('--issuer <iss>', 'expected token issuer with --jwks-url').env('COFFER_JWT_ISSUER'))
    .addOption(new Option('--audience <aud>', 'expected token audience with --jwks-url').env('COFFER_JWT_AUDIENCE'))
    .option('--gc-interval <seconds>', 'garbage-collection period (0 disables)', '600')
    .action(async (opts: ServeFlags) => {
      let jwks: { url: string; issuer: string; audience: string } | undefined;
      if (opts.jwksUrl) {
        if (!opts.issuer || !opts.audience) throw new CofferError(ErrorCode.INVALID_ARGUMENT, '--jwks-url needs --issuer and --audience');
        jwks = { url: opts.jwksUrl, issuer: opts.issuer, audience: opts.audience };
      }
      const service = await startService({
        dataDir: opts.dataDir,
        listen: parseListen(opts.listen),
        mongoUri: opts.mongodbUri,
        defaultRootRole: opts.defaultRootRole,
        jwks,
        gcIntervalMs: intFlag('--gc-interval', opts.gcInterval, 0, 7 * 24 * 3600) * 1000,
      });
      const stopped = untilSignal(service.close); // before the line scripts wait for, so a SIGTERM right after it is caught
      process.stdout.write(`storage service: ${service.url}\n`);
      await stopped;
    });
}
