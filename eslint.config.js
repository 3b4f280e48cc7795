// Lint: TypeScript rules plus the architectural boundaries from docs/architecture.md
// (who may import the database drivers, and who may touch data keys).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const driverImports = {
  paths: [
    { name: 'mongodb', message: 'Only src/metadata/ (and test servers) may import the MongoDB driver.' },
    { name: 'better-sqlite3', message: 'Only src/metadata/ may import better-sqlite3.' },
  ],
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', 'coverage/**', 'test/servers/**/*.go'] },
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
    // the metadata adapters, migrations and their tests are the only places that talk to the databases
    files: ['src/metadata/**', 'migrations/**', 'test/**', 'bench/**'],
    rules: { 'no-restricted-imports': 'off' },
  },
);
