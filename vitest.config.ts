import { configDefaults, defineConfig } from 'vitest/config';

/** Tests that need no OpenSSH server: pure logic (test/unit) and ssh2's in-process Server (test/contract). */
const NO_SSHD = ['test/unit/**/*.test.ts', 'test/contract/**/*.test.ts'];

/**
 * Two projects, one run: `npm test` (`vitest run`) runs both; `npm run test:unit`
 * (`vitest run --project unit`) runs only `unit`, which starts no sshd.
 *
 * The `sshd` project's globalSetup (`test/global-setup.ts`) starts one shared OpenSSH server (see
 * `test/helpers/sshd.ts`); it is set on that project only, since vitest always runs the root
 * config's globalSetup. Forks, not threads: the harness spawns sshd with a parent-death signal,
 * which is tied to the spawning thread. Two workers: the box has two cores, and sshd needs CPU too.
 */
export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    teardownTimeout: 30_000,
    pool: 'forks',
    maxWorkers: 2,
    fileParallelism: true,
    retry: 0,
    projects: [
      { extends: true, test: { name: 'unit', include: NO_SSHD } },
      {
        extends: true,
        test: {
          name: 'sshd',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...NO_SSHD],
          globalSetup: ['test/global-setup.ts'],
        },
      },
    ],
  },
});
