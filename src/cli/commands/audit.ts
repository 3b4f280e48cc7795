// `coffer audit log` shows the log for people, verified as it is read (src/vault/audit-log.ts).
// `coffer audit verify`: walks the hash-chained audit log straight from the metadata store (not through the
// service it audits) and reports the first edited, removed or reordered entry. `--expect-head` compares the
// head with a value recorded elsewhere, which also detects a truncated tail.
import type { Command } from 'commander';
import { CofferError, ErrorCode } from '../../errors.js';
import { verifyAuditChain } from '../../vault/audit.js';
import { readAuditLog, type AuditFilter } from '../../vault/audit-log.js';
import { parsePath, formatPath } from '../../vault/paths.js';
import { dataDirOption, jsonOption, mongoUriOption } from '../options.js';
import { print } from '../output.js';
import { openVaultMetadata } from '../vault-metadata.js';

interface AuditFlags {
  dataDir: string;
  mongodbUri?: string;
  expectHead?: string;
  json?: boolean;
}

interface LogFlags {
  dataDir: string;
  mongodbUri?: string;
  since?: string;
  user?: string;
  path?: string;
  json?: boolean;
}

export function register(program: Command): void {
  const audit = program.command('audit').description('the append-only, hash-chained audit log');
  audit
    .command('log')
    .description('show the audit log (who did what, when), each entry verified against the chain as it is read')
    .addOption(dataDirOption())
    .addOption(mongoUriOption())
    .option('--since <time>', 'entries from this time on: ISO-8601 (2026-01-31, 2026-01-31T12:00Z) or an age (90m, 24h, 7d)')
    .option('--user <name>', 'entries made by this user')
    .option('--path <path>', 'entries about this vault path or anything below it')
    .addOption(jsonOption())
    .action(async (opts: LogFlags) => {
      const filter: AuditFilter = {};
      if (opts.since !== undefined) filter.since = parseSince(opts.since);
      if (opts.user !== undefined) filter.user = opts.user;
      if (opts.path !== undefined) filter.path = formatPath(parsePath(opts.path.length > 1 ? opts.path.replace(/\/$/, '') : opts.path));
      const store = await openVaultMetadata(opts.dataDir, opts.mongodbUri);
      let first = true;
      try {
        if (opts.json) process.stdout.write('[');
        for await (const e of readAuditLog(store, filter)) {
          const view = { seq: e.seq, at: e.at.toISOString(), actor: e.actor, action: e.action, target: e.target, details: e.details, hash: e.hash };
          if (opts.json) process.stdout.write(`${first ? '' : ','}${JSON.stringify(view)}`);
          else process.stdout.write(`${view.at}  ${e.actor}  ${e.action}  ${e.target}${Object.keys(e.details).length ? `  ${JSON.stringify(e.details)}` : ''}\n`);
          first = false;
        }
      } finally {
        if (opts.json) process.stdout.write(']\n');
        await store.close();
      }
    });
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

/** --since: an ISO-8601 time, or an age such as 90m, 24h or 7d. Throws INVALID_ARGUMENT. */
function parseSince(text: string): Date {
  const age = /^(\d+)([smhd])$/.exec(text.trim());
  if (age) return new Date(Date.now() - Number(age[1]) * { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[age[2] as 's' | 'm' | 'h' | 'd']);
  const at = /^\d{4}-\d{2}-\d{2}/.test(text) ? new Date(text) : new Date(NaN);
  if (Number.isNaN(at.getTime())) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `--since takes an ISO-8601 time or an age like 24h, got "${text}"`);
  return at;
}
