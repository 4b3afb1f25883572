// The dependency rule (domain ← application ← adapters ← main) is enforced here, by the linter,
// so that a stray import fails `npm run lint` instead of relying on review.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

const forbid = (names, regexes, message) => ({
  'no-restricted-imports': [
    'error',
    {
      paths: names.map((name) => ({ name, message })),
      patterns: regexes.map((regex) => ({ regex, message })),
    },
  ],
});
// Anything that is neither relative nor fp-ts/io-ts: frameworks, node:* built-ins, other packages.
const notPure = '^(?!\\.|fp-ts(/|$)|io-ts(/|$))';

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'dist-*/**',
      'coverage/**',
      'node_modules/**',
      'outbox/**',
      'artifacts/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node }, ecmaVersion: 2023, sourceType: 'module' },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'off',
    },
  },
  {
    // Everything that is not relative, fp-ts or io-ts is forbidden, then the outer layers.
    files: ['src/domain/**/*.ts'],
    rules: forbid(
      [],
      [notPure, '(^|/)(application|adapters|main)/'],
      'The domain is pure: it imports nothing outside src/domain but fp-ts and io-ts.',
    ),
  },
  {
    files: ['src/application/**/*.ts'],
    rules: forbid(
      [],
      [notPure, '(^|/)(adapters|main)/'],
      'The application imports only src/domain, fp-ts and io-ts; adapters come in through ports.',
    ),
  },
  {
    files: ['src/adapters/**/*.ts'],
    rules: forbid(
      ['inversify', 'reflect-metadata'],
      ['(^|/)main/'],
      'Adapters do not know the composition root; only src/main imports inversify.',
    ),
  },
  {
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs' },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unused-expressions': 'off',
    },
  },
);
