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
  // Components meet at contracts (infra/, runtime/protocol/), never inside each other's files;
  // infra/ imports from no component. The composition roots (infra/bringup, infra/test,
  // infra/bench, test/, bench/) may import everything.
  ...[
    ['gateway', ['scheduler', 'worker', 'cli']],
    ['scheduler', ['gateway', 'worker', 'cli']],
    ['worker', ['gateway', 'scheduler', 'cli']],
    ['cli', ['gateway', 'scheduler', 'worker']],
    ['infra', ['gateway', 'scheduler', 'worker', 'cli']],
  ].map(([component, others]) => ({
    files: [`${component}/**/*.ts`],
    ignores: ['infra/bringup/**', 'infra/test/**', 'infra/bench/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ regex: `^(\\.\\./)+(${others.join('|')})/`, message: `${component}/ imports no other component's files: share what both need in infra/ (docs/ARCHITECTURE.md, "Where components meet").` }] }],
    },
  })),
  {
    files: ['infra/config.ts', 'runtime/**', 'test/**', 'bench/**', 'infra/test/**', 'infra/bringup/**', 'cli/**'],
    rules: { 'no-restricted-properties': 'off' },
  },
);
