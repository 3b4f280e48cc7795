// Test helper: the real AWS Nitro attestation documents in test/vectors/nitro (its README names each file's
// source and licence, and what it must pass and fail), with the facts the tests check them against. Every
// file is read through readNitroFile, which checks its SHA-256 against the README's, so a changed or
// swapped vector fails loudly instead of silently testing something else.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const NITRO_FIXTURE_DIR = fileURLToPath(new URL('../../test/vectors/nitro/', import.meta.url));

/** SHA-256 of each vector file, as listed in test/vectors/nitro/README.md. */
export const NITRO_FILE_SHA256: Readonly<Record<string, string>> = Object.freeze({
  'base-nitro-validator.cbor': '69d51f984229a1bc4009ac2029b1a7f5d255ada7239004b8cda5d06dcdbd365f',
  'evervault-beta-valid.cbor': 'a72552688ab6de06b9039ebda2bd5ae9285860ec886f841da94351681dfb3eb6',
  'evervault-debug-mode.cbor': '46591b92f9abefaace22a6d7ea4ca9c7007dfdbe788fbe8634b230ec2043a789',
  'evervault-tls-bound.cbor': '6f80ac250af2f06f1e423051f64a8b29926cc474a728d0bf1f7a4d21074ec9e5',
  'evervault-tls-bound-cert.der': 'ca79c6af65d11e3c710ee71141daacd3b2eb3e6c1e891f2ee6385fd13d6e566d',
});

export interface NitroFixture {
  name: string;
  bytes: Uint8Array;
  /** Document timestamp (UTC) from the README. */
  timestamp: string;
  /** First 8 hex digits of PCR0 from the README. */
  pcr0Prefix: string;
  debugMode: boolean;
}

const table: Array<Omit<NitroFixture, 'bytes'>> = [
  { name: 'base-nitro-validator.cbor', timestamp: '2024-11-30T16:22:48.387Z', pcr0Prefix: 'ec74bfbe', debugMode: false },
  { name: 'evervault-beta-valid.cbor', timestamp: '2022-10-13T08:58:02.136Z', pcr0Prefix: 'f4d48b81', debugMode: false },
  { name: 'evervault-debug-mode.cbor', timestamp: '2022-10-12T13:50:06.081Z', pcr0Prefix: '00000000', debugMode: true },
  { name: 'evervault-tls-bound.cbor', timestamp: '2023-09-18T15:03:30.860Z', pcr0Prefix: '00000000', debugMode: true },
];

/** The bytes of one vector file; throws if it is not listed or its SHA-256 differs from the README's. */
export function readNitroFile(name: string): Uint8Array {
  const want = NITRO_FILE_SHA256[name];
  if (want === undefined) throw new Error(`${name} is not a listed Nitro test vector`);
  const bytes = new Uint8Array(readFileSync(NITRO_FIXTURE_DIR + name));
  const got = createHash('sha256').update(bytes).digest('hex');
  if (got !== want) throw new Error(`test/vectors/nitro/${name}: SHA-256 ${got}, expected ${want}`);
  return bytes;
}

export const nitroFixtures: NitroFixture[] = table.map((f) => ({ ...f, bytes: readNitroFile(f.name) }));

export function fixture(name: string): NitroFixture {
  const f = nitroFixtures.find((x) => x.name === name);
  if (!f) throw new Error(`no fixture ${name}`);
  return f;
}

/** A clock one second after the document was made: inside every certificate's validity. */
export function atDocumentTime(f: NitroFixture, offsetMs = 1000): Date {
  return new Date(Date.parse(f.timestamp) + offsetMs);
}

export const hex = (u: Uint8Array): string => Buffer.from(u).toString('hex');
