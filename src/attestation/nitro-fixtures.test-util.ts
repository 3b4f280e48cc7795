// Test helper: the real AWS Nitro attestation documents in ../shared/fixtures/nitro (see its README for
// their sources), with the facts the tests check them against.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const NITRO_FIXTURE_DIR = fileURLToPath(new URL('../../../shared/fixtures/nitro/', import.meta.url));

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

export function readNitroFile(name: string): Uint8Array {
  return new Uint8Array(readFileSync(NITRO_FIXTURE_DIR + name));
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
