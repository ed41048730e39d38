// ESLint flat config: typescript-eslint's type-checked rules over the whole project.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/**', 'charts/**', '.kopek/**'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  ...tseslint.configs.stylisticTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // Ceilings just above today's largest functions, so none grows further; see docs/decisions/0009.
      complexity: ['error', 30],
      'max-depth': ['error', 4],
      'max-params': ['error', 6],
      'max-nested-callbacks': ['error', 4],
      'max-statements': ['error', 45],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      // `const { status: _status, ...rest } = object` is how an object is copied without a field.
      '@typescript-eslint/no-unused-vars': [
        'error',
        { ignoreRestSiblings: true, argsIgnorePattern: '^_' },
      ],
    },
  },
  {
    files: ['**/*.js'],
    extends: [tseslint.configs.disableTypeChecked],
  },
);
