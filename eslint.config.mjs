// Lint: typescript-eslint's type-checked rules for what ships (nodes/, src/: the build program), the syntactic
// rules for tests, bench and scripts (they load node modules through require(), as node-red-node-test-helper wants).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'resources/**', 'coverage/**', 'test-artifacts/**', '**/*.js', '**/*.mjs', '**/*.cjs'] },
  js.configs.recommended,
  {
    files: ['nodes/**/*.ts', 'src/**/*.ts'],
    extends: [...tseslint.configs.recommendedTypeChecked],
    languageOptions: { parserOptions: { project: './tsconfig.build.json', tsconfigRootDir: import.meta.dirname } },
    rules: {
      // Node-RED constructors keep `const node = this` for the closures they register.
      '@typescript-eslint/no-this-alias': 'off',
      // `import x = require('./x')` is how TypeScript imports an `export =` module (each node type's register function).
      '@typescript-eslint/no-require-imports': ['error', { allowAsImport: true }],
      // String(value) of flow and wire values of unknown shape is what we mean (a readable rendering or an error text).
      '@typescript-eslint/no-base-to-string': 'off',
      // Mbus addresses print themselves (toString), on purpose, in log lines.
      '@typescript-eslint/restrict-template-expressions': [
        'error',
        { allowNumber: true, allowBoolean: true, allow: [{ from: 'file', name: 'Address', path: 'src/mbus/address.ts' }] },
      ],
    },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts', 'scripts/**/*.ts'],
    extends: [...tseslint.configs.recommended],
    rules: {
      '@typescript-eslint/no-require-imports': 'off',
    },
  },
);
