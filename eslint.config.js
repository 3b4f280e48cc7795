// Lint: TypeScript rules plus the architectural boundaries from docs/architecture.md
// (who may import the database drivers, and who may touch data keys).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const driverPaths = [
  { name: 'mongodb', message: 'Only src/metadata/ (and test servers) may import the MongoDB driver.' },
  { name: 'node:sqlite', message: 'Only src/metadata/ (and migrations/) may import node:sqlite.' },
  { name: 'better-sqlite3', message: 'Coffer uses node:sqlite (docs/metadata.md); only src/metadata/ may open SQLite.' },
];
// The crypto internals (including the fixed-nonce helpers for test vectors) are reached only through
// src/crypto/index.ts; only src/crypto itself and the tests import the modules directly.
const cryptoInternals = [
  {
    group: ['**/crypto/chunk.js', '**/crypto/keyfile.js', '**/crypto/test-only.js', '**/crypto/chunker.js', '**/crypto/chunk-header.js'],
    message: 'Import from src/crypto/index.js: the crypto modules are internal.',
  },
];
const driverImports = { paths: driverPaths, patterns: cryptoInternals };

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', 'coverage/**', '.tmp/**', 'test/servers/**/*.go', 'test/servers/moto-venv/**', 'test/servers/s3-clients-venv/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', setImmediate: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
      'no-restricted-imports': ['error', driverImports],
    },
  },
  {
    // the metadata adapters and migrations are the only product code that talks to the databases
    files: ['src/metadata/**', 'migrations/**'],
    rules: { 'no-restricted-imports': ['error', { patterns: cryptoInternals }] },
  },
  {
    files: ['src/crypto/**'],
    rules: { 'no-restricted-imports': ['error', { paths: driverPaths }] },
  },
  {
    // tests may reach into anything they test (test servers use the driver directly)
    files: ['test/**', '**/*.test.ts', '**/*.case.ts'],
    rules: { 'no-restricted-imports': 'off' },
  },
);
