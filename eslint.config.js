// One linter for every package: typescript-eslint's recommended rules on top of ESLint's.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['.build-*/**', 'dist/**', 'node_modules/**', '.skiff/**', '.tap/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', setImmediate: 'readonly', URL: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-properties': ['error', { object: 'process', property: 'env', message: 'Read the environment only in infra/config.ts (or the in-container bootstrap).' }],
    },
  },
  {
    files: ['infra/config.ts', 'runtime/**', 'test/**', 'bench/**', 'infra/test/**', 'infra/bringup/**', 'cli/**'],
    rules: { 'no-restricted-properties': 'off' },
  },
);
