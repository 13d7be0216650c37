/**
 * The `ssh-tether` command (package.json `bin`). See `ssh-tether --help`.
 *
 * @module cli
 */
import { runCli } from './commands.js';

runCli(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin }).then(
  (code) => {
    process.exitCode = code;
    // stdin may still be open (a pipe nobody closes); nothing else should keep the process alive.
    process.stdin.pause();
    process.stdin.unref?.();
  },
  (err: unknown) => {
    process.stderr.write(`ssh-tether: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
