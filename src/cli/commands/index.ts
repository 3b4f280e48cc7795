// Registers every subcommand (one file each) on the program.
import type { Command } from 'commander';
import { register as attestation } from './attestation.js';
import { register as audit } from './audit.js';
import { register as bench } from './bench.js';
import { register as dev } from './dev.js';
import { register as get } from './get.js';
import { register as keygen } from './keygen.js';
import { register as keys } from './keys.js';
import { register as kms } from './kms.js';
import { register as ls } from './ls.js';
import { register as migrate } from './migrate.js';
import { register as mkdir } from './mkdir.js';
import { register as mv } from './mv.js';
import { register as put } from './put.js';
import { register as rm } from './rm.js';
import { register as serve } from './serve.js';
import { register as stat } from './stat.js';
import { register as token } from './token.js';

export function registerAll(program: Command): void {
  for (const register of [dev, serve, kms, token, keygen, put, get, ls, stat, mkdir, mv, rm, keys, migrate, audit, attestation, bench]) register(program);
}
