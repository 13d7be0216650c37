import { defineConfig } from 'vitest/config';

/**
 * One shared OpenSSH server is started by `test/global-setup.ts` (see `test/helpers/sshd.ts`).
 * Forks, not threads: the harness spawns sshd with a parent-death signal, which is tied to the
 * spawning thread. Two workers: the box has two cores, and sshd needs CPU too.
 */
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    teardownTimeout: 30_000,
    pool: 'forks',
    maxWorkers: 2,
    fileParallelism: true,
    retry: 0,
  },
});
