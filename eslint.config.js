import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';

// The layers of DESIGN.md §3: a file imports only its own layer or lower, no cycles.
// Each zone forbids `target` from importing any of `from` (paths relative to the repo root).
const FEATURES = ['exec', 'forward', 'sftp', 'jobs'];
const TOP = ['src/doctor', 'src/metrics', 'src/cli', 'src/index.ts'];
const FACADE = ['src/client.ts', 'src/group.ts'];
// The settings (SshClientOptions, DEFAULTS, the resolved per-attempt object): read by connection/
// and everything above it; config/ and below never import them (config/ resolves ssh_config only).
const SETTINGS = ['src/options.ts', 'src/settings.ts'];
// DEFAULTS: a leaf above config/ (it reuses ssh_config's default IdentityFile list), read by
// connection/, forward/ and the settings without importing the settings themselves.
const DEFAULTS_FILE = 'src/defaults.ts';
/** @param {string[]} layers @returns {string[]} */
const above = (layers) => layers.map((l) => (l.startsWith('src/') ? l : `src/${l}`));
const layerZones = [
  { target: 'src/internal', from: above([...SETTINGS, DEFAULTS_FILE, 'ssh2', 'config', 'known-hosts', 'connection', 'channel', ...FEATURES, 'server', ...FACADE, ...TOP]) },
  { target: 'src/errors.ts', from: above([...SETTINGS, DEFAULTS_FILE, 'ssh2', 'config', 'known-hosts', 'connection', 'channel', ...FEATURES, 'server', ...FACADE, ...TOP]) },
  { target: 'src/ssh2', from: above([...SETTINGS, DEFAULTS_FILE, 'config', 'known-hosts', 'connection', 'channel', ...FEATURES, 'server', ...FACADE, ...TOP]) },
  { target: 'src/config', from: above([...SETTINGS, DEFAULTS_FILE, 'known-hosts', 'connection', 'channel', ...FEATURES, 'server', ...FACADE, ...TOP]) },
  { target: DEFAULTS_FILE, from: above([...SETTINGS, 'known-hosts', 'connection', 'channel', ...FEATURES, 'server', ...FACADE, ...TOP]) },
  { target: 'src/known-hosts', from: above([...SETTINGS, 'connection', 'channel', ...FEATURES, 'server', ...FACADE, ...TOP]) },
  { target: 'src/connection', from: above(['channel', ...FEATURES, 'server', ...FACADE, ...TOP]) },
  { target: 'src/channel', from: above([...FEATURES, 'server', ...FACADE, ...TOP]) },
  // Features never import each other (jobs/ is built on exec/, so it may import exec/).
  { target: 'src/exec', from: above(['forward', 'sftp', 'jobs', 'server', ...FACADE, ...TOP]) },
  { target: 'src/forward', from: above(['exec', 'sftp', 'jobs', 'server', ...FACADE, ...TOP]) },
  { target: 'src/sftp', from: above(['exec', 'forward', 'jobs', 'server', ...FACADE, ...TOP]) },
  { target: 'src/jobs', from: above(['forward', 'sftp', 'server', ...FACADE, ...TOP]) },
  // SshGroup drives SshClients (it may name feature result types, not open channels itself).
  { target: 'src/group.ts', from: above(['server', ...TOP]) },
  { target: 'src/client.ts', from: above(['server', 'src/group.ts', ...TOP]) },
  { target: SETTINGS, from: above(['server', 'src/group.ts', 'src/client.ts', ...TOP]) },
  // The in-process server is its own subtree: nothing from the client side but errors/internal.
  // (src/options.ts is allowed: the server hands out ready SshClientOptions for its own address.)
  { target: 'src/server', from: above(['ssh2', 'config', 'known-hosts', 'connection', 'channel', ...FEATURES, 'src/client.ts', 'src/group.ts', ...TOP]) },
].map((/** @type {{ target: string | string[]; from: string[] }} */ z) => ({ ...z, message: 'layer rule (DESIGN.md §3): a file imports only its own layer or lower' }));

export default tseslint.config(
  { ignores: ['dist/**', 'docs/**', 'node_modules/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['*.js', 'scripts/*.mjs'] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['src/**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      ...importX.flatConfigs.typescript.settings,
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.json' })],
    },
    rules: {
      // import-x/no-cycle skips `import type` (no option to include it); test/unit/import-cycles.test.ts
      // checks the whole src/ graph with type-only imports.
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      'import-x/no-restricted-paths': ['error', { basePath: import.meta.dirname, zones: layerZones }],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', URL: 'readonly', console: 'readonly' } },
  },
  {
    files: ['test/**/*.ts', 'examples/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
);
