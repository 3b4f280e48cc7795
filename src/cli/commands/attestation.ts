// `coffer attestation verify|measure`: verify a Nitro attestation document against a pinned root and a PCR
// policy (printing the verified fields), or print the PCR0 measurement of an enclave code bundle.
import { X509Certificate } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { CofferError, ErrorCode } from '../../errors.js';
import { MAX_DOCUMENT_BYTES, resolveTrustRoot, verifyAttestation, type PcrPolicy, type TrustRoot } from '../../attestation/index.js';
import { loadDevRoot, measureEnclaveBundle } from '../../../enclave/attestation/index.js';
import { dataDirOption, jsonOption } from '../options.js';
import { print } from '../output.js';

interface VerifyCliOptions {
  root: 'aws' | 'dev';
  devRootCert?: string;
  dataDir: string;
  at?: string;
  pcr: string[];
  nonce?: string;
  maxAge?: string;
  allowDebugMode?: boolean;
  json?: boolean;
}

const usage = (message: string): CofferError => new CofferError(ErrorCode.INVALID_ARGUMENT, message);
const hex = (u: Uint8Array | null): string | null => (u === null ? null : Buffer.from(u).toString('hex'));

/** `--pcr N=HEX` (repeatable) → policy; none given → an empty policy, which denies. Throws INVALID_ARGUMENT. */
export function parsePcrFlags(flags: string[], allowDebugMode: boolean): PcrPolicy {
  const pcrs: Record<number, string[]> = {};
  for (const flag of flags) {
    const m = /^(\d{1,2})=([0-9a-fA-F]{96})$/.exec(flag);
    if (!m) throw usage(`--pcr must be N=HEX with 96 hex digits (48 bytes), got ${JSON.stringify(flag.slice(0, 40))}`);
    const index = Number(m[1]);
    (pcrs[index] ??= []).push((m[2] as string).toLowerCase());
  }
  return { pcrs, allowDebugMode };
}

async function trustRootFrom(opts: VerifyCliOptions, explicitDataDir: boolean): Promise<TrustRoot> {
  if (opts.root === 'aws') {
    if (opts.devRootCert !== undefined) throw usage('--dev-root-cert applies to --root dev only (aws and dev roots never mix)');
    return { kind: 'aws' };
  }
  if (opts.devRootCert !== undefined) {
    if (explicitDataDir) throw usage('give either --dev-root-cert or --data-dir, not both');
    return { kind: 'dev', rootCertPem: await readFile(opts.devRootCert, 'utf8') };
  }
  return (await loadDevRoot(opts.dataDir)).trustRoot;
}

async function readDocument(file: string): Promise<Uint8Array> {
  const st = await stat(file).catch((e: unknown) => {
    throw new CofferError(ErrorCode.NOT_FOUND, `cannot read ${file}`, { cause: e });
  });
  if (!st.isFile()) throw usage(`${file} is not a file`);
  if (st.size > MAX_DOCUMENT_BYTES) throw new CofferError(ErrorCode.ATTESTATION_FORMAT, `attestation document: ${file} is larger than ${MAX_DOCUMENT_BYTES} bytes`);
  return new Uint8Array(await readFile(file));
}

export function register(program: Command): void {
  const attestation = program.command('attestation').description('verify Nitro attestation documents and measure enclave bundles');

  attestation
    .command('verify')
    .description('verify an attestation document (chain to the pinned root, ES384, age, nonce, PCR policy) and print its fields')
    .argument('<file>', 'attestation document (raw COSE_Sign1 bytes)')
    .addOption(new Option('--root <kind>', 'trust root: the AWS Nitro root G1, or the development root').choices(['aws', 'dev']).makeOptionMandatory())
    .option('--dev-root-cert <pem-file>', 'development root certificate (with --root dev; default: the one in --data-dir)')
    .addOption(dataDirOption())
    .option('--at <iso-time>', 'verify as of this time (default: now)')
    .option('--pcr <N=HEX>', 'allowed PCR value, repeatable; all listed PCRs must match; none given denies', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--allow-debug-mode', 'let an all-zero PCR value (debug-mode enclave) match')
    .option('--nonce <hex>', 'the document must carry exactly this nonce')
    .option('--max-age <seconds>', 'maximum age of the document at --at (default 300)')
    .addOption(jsonOption())
    .action(async (file: string, opts: VerifyCliOptions, cmd: Command) => {
      // strictly ISO 8601 with a zone: Date's own parser also takes "Nov 30 2024 16:23" in the local zone, which
      // would verify against a clock that differs between machines
      const iso = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;
      if (opts.at !== undefined && !iso.test(opts.at)) throw usage(`--at must be an ISO 8601 time with a zone (2024-11-30T16:23:00Z), got ${JSON.stringify(opts.at)}`);
      const now = opts.at === undefined ? new Date() : new Date(opts.at);
      if (Number.isNaN(now.getTime())) throw usage(`--at must be an ISO time, got ${JSON.stringify(opts.at)}`);
      if (opts.nonce !== undefined && !/^([0-9a-fA-F]{2})+$/.test(opts.nonce)) throw usage('--nonce must be hex');
      let maxAgeMs: number | undefined;
      if (opts.maxAge !== undefined) {
        if (!/^\d+(\.\d+)?$/.test(opts.maxAge)) throw usage('--max-age must be a number of seconds');
        maxAgeMs = Number(opts.maxAge) * 1000;
      }
      const pcrPolicy = parsePcrFlags(opts.pcr, opts.allowDebugMode === true);
      const root = await trustRootFrom(opts, cmd.getOptionValueSource('dataDir') === 'cli');
      const bytes = await readDocument(file);
      const doc = verifyAttestation(bytes, {
        root,
        now,
        pcrPolicy,
        ...(maxAgeMs === undefined ? {} : { maxAgeMs }),
        ...(opts.nonce === undefined ? {} : { expectedNonce: new Uint8Array(Buffer.from(opts.nonce, 'hex')) }),
      });
      const leaf = new X509Certificate(doc.certificate);
      const result = {
        verified: true,
        module_id: doc.moduleId,
        timestamp: doc.timestamp.toISOString(),
        digest: doc.digest,
        pcrs: Object.fromEntries([...doc.pcrs].map(([i, v]) => [String(i), hex(v)])),
        public_key: hex(doc.publicKey),
        user_data: hex(doc.userData),
        nonce: hex(doc.nonce),
        certificate_subject: leaf.subject.split('\n').join(', '),
        certificate_not_after: new Date(leaf.validTo).toISOString(),
        root: { kind: root.kind, sha256: resolveTrustRoot(root).fingerprint },
      };
      print(opts, result, () =>
        [
          `verified: ${file} (root ${result.root.kind} ${result.root.sha256})`,
          `module_id ${result.module_id}`,
          `timestamp ${result.timestamp}`,
          ...Object.entries(result.pcrs).map(([i, v]) => `PCR${i} ${v}`),
          `public_key ${result.public_key ?? '-'}`,
          `user_data ${result.user_data ?? '-'}`,
          `nonce ${result.nonce ?? '-'}`,
          `certificate ${result.certificate_subject}`,
        ].join('\n'),
      );
    });

  attestation
    .command('measure')
    .description('print the PCR0 measurement of the enclave code bundle (what `npm start` admits), or of a bundle directory (see docs/enclave-gateway.md)')
    .argument('[dir]', 'a bundle directory (default: the enclave code bundle of this Coffer)')
    .option('--list', 'print the measured listing (path, size, SHA-384 per file) instead of PCR0')
    .addOption(jsonOption())
    .action(async (dir: string | undefined, opts: { json?: boolean; list?: boolean }) => {
      const m = dir === undefined ? await (await import('../../../enclave/runtime/bundle.js')).measureEnclaveCode() : await measureEnclaveBundle(dir);
      if (opts.list && !opts.json) return void process.stdout.write(m.listing.replace(/\0/g, '  '));
      print(opts, { pcr0: m.pcr0, pcr1: m.pcr1, pcr2: m.pcr2, files: m.files }, () => m.pcr0);
    });
}
