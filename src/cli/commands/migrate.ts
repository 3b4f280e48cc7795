// `coffer migrate [status|up]`: shows or applies metadata schema migrations (the service applies pending ones
// at start; this is for operators who want to see or run them first).
import type { Command } from 'commander';
import { metadataConfig } from '../../config.js';
import { migrateUp, migrationStatus, openMetadataStore } from '../../metadata/index.js';
import { dataDirOption, jsonOption, mongoUriOption } from '../options.js';
import { print } from '../output.js';

interface MigrateFlags {
  dataDir: string;
  mongodbUri?: string;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('migrate')
    .description('show (status) or apply (up) metadata schema migrations')
    .argument('[action]', 'status | up', 'status')
    .addOption(dataDirOption())
    .addOption(mongoUriOption())
    .addOption(jsonOption())
    .action(async (action: string, opts: MigrateFlags) => {
      if (action !== 'status' && action !== 'up') {
        const { CofferError, ErrorCode } = await import('../../errors.js');
        throw new CofferError(ErrorCode.INVALID_ARGUMENT, `unknown migrate action "${action}" (status | up)`);
      }
      const store = await openMetadataStore(metadataConfig(opts.dataDir, opts.mongodbUri), { migrate: false });
      try {
        if (action === 'status') {
          const s = await migrationStatus(store);
          print(opts, s, () =>
            `schema v${s.current} of v${s.latest}${s.pending.length ? `; pending: ${s.pending.map((p) => `v${p.version} ${p.name}`).join(', ')}` : '; up to date'}`,
          );
        } else {
          const applied = await migrateUp(store);
          const s = await migrationStatus(store);
          print(opts, { applied, current: s.current, latest: s.latest }, () =>
            applied.length ? `applied ${applied.map((v) => `v${v}`).join(', ')}; schema is v${s.current}` : `schema v${s.current} is up to date`,
          );
        }
      } finally {
        await store.close();
      }
    });
}
