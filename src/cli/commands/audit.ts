// `coffer audit verify`: walks the hash-chained audit log straight from the metadata store (not through the
// service it audits) and reports the first edited, removed or reordered entry. `--expect-head` compares the
// head with a value recorded elsewhere, which also detects a truncated tail.
import type { Command } from 'commander';
import { CofferError, ErrorCode } from '../../errors.js';
import { verifyAuditChain } from '../../vault/audit.js';
import { dataDirOption, jsonOption, mongoUriOption } from '../options.js';
import { print } from '../output.js';
import { openVaultMetadata } from '../vault-metadata.js';

interface AuditFlags {
  dataDir: string;
  mongodbUri?: string;
  expectHead?: string;
  json?: boolean;
}

export function register(program: Command): void {
  const audit = program.command('audit').description('the append-only, hash-chained audit log');
  audit
    .command('verify')
    .description('verify the whole audit chain; exits non-zero at the first broken entry')
    .addOption(dataDirOption())
    .addOption(mongoUriOption())
    .option('--expect-head <seq:hash>', 'head recorded earlier (from a previous verify or GET /v1/audit/head); detects truncation')
    .addOption(jsonOption())
    .action(async (opts: AuditFlags) => {
      const store = await openVaultMetadata(opts.dataDir, opts.mongodbUri);
      try {
        const r = await verifyAuditChain(store);
        if (!r.ok) {
          throw new CofferError(ErrorCode.AUDIT_CHAIN_BROKEN, `audit chain broken at entry ${r.brokenAt}: ${r.reason} (${r.count} entries verified before it)`, { details: r });
        }
        if (opts.expectHead) {
          const [seqText, hash] = opts.expectHead.split(':');
          const seq = Number(seqText);
          if (!Number.isInteger(seq) || !hash) throw new CofferError(ErrorCode.INVALID_ARGUMENT, '--expect-head takes SEQ:HASH');
          if (r.head.seq < seq) throw new CofferError(ErrorCode.AUDIT_CHAIN_BROKEN, `audit log truncated: head is entry ${r.head.seq}, expected at least ${seq}`);
          const entry = (await store.listAudit(seq - 1, 1))[0];
          if (!entry || entry.hash !== hash) throw new CofferError(ErrorCode.AUDIT_CHAIN_BROKEN, `audit entry ${seq} does not match the expected head hash`);
        }
        print(opts, { ok: true, entries: r.count, head: r.head }, () => `audit chain ok: ${r.count} entries, head ${r.head.seq}:${r.head.hash}`);
      } finally {
        await store.close();
      }
    });
}
