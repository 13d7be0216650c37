/**
 * ssh-tether log watcher: follows a remote log with a keyword filter and prints the matches,
 * while the server is restarted underneath it and the log is rotated; no line is lost or repeated.
 *
 *   npm run example -- examples/log-watch.ts                  # in-process server, a writer job
 *   SSH_HOST=box LOG=/var/log/syslog npm run example -- examples/log-watch.ts
 *
 * Against the in-process server it starts a writer as a durable job (`ssh.jobs`), which keeps
 * writing while the link is down, rotates the log by rename halfway, and restarts the server twice.
 */
import { SshClient } from '../src/index.js';
import { target } from './lib/target.js';

const KEYWORDS = /ERROR|CRITICAL|FAIL/;

async function main(): Promise<void> {
  const t = await target();
  const ssh = new SshClient({ ...t.options, keepaliveIntervalMs: 1_000, keepaliveCountMax: 2, reconnect: { minDelayMs: 100, maxDelayMs: 1_000 } });
  ssh.on('reconnecting', ({ attempt, cause }) => console.log(`  [link] reconnecting (attempt ${attempt}, ${cause.code})`));
  ssh.on('ready', () => console.log('  [link] ready'));
  const stop = new AbortController();
  try {
    const log = process.env.LOG ?? 'app.log';
    let expected = 0;
    if (t.server) {
      // 300 lines, every 10th an ERROR; the log is renamed to app.log.1 after line 150.
      const writer = await ssh.jobs.start(
        `i=1; while [ $i -le 300 ]; do if [ $((i % 10)) -eq 0 ]; then l=ERROR; else l=INFO; fi; ` +
          `echo "$l line $i" >> ${log}; [ $i -eq 150 ] && mv ${log} ${log}.1; i=$((i+1)); sleep 0.02; done`,
        { name: 'log-writer' },
      );
      expected = 30;
      console.log(`writer job ${writer.id} started (pid ${String(writer.pid)})`);
      const server = t.server;
      void (async () => {
        for (let i = 0; i < 2; i++) {
          await new Promise((r) => setTimeout(r, 1_500));
          console.log('  [server] restart');
          await server.faults.restart();
        }
        await writer.wait({ timeoutMs: 60_000 });
        // give the follower a moment to read the end, then stop
        await new Promise((r) => setTimeout(r, 1_500));
        stop.abort();
      })().catch((err: unknown) => {
        console.error('writer/restarts failed:', err);
        stop.abort();
      });
    }
    let matches = 0;
    try {
      for await (const { line, offset } of ssh.follow(log, { from: 'start', filter: KEYWORDS, signal: stop.signal })) {
        matches++;
        console.log(`match @${offset}: ${line}`);
      }
    } catch (err) {
      if (!stop.signal.aborted) throw err;
    }
    console.log(`${matches} matching lines${expected ? ` (expected ${expected}: ${matches === expected ? 'none lost, none repeated' : 'MISMATCH'})` : ''}; reconnects: ${ssh.health().reconnects}`);
    if (expected && matches !== expected) process.exitCode = 1;
  } finally {
    await ssh.close();
    await t.cleanup();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
