/**
 * ssh-tether quickstart: connect, run commands, print health(), then heal after a server restart
 * and detect a dead (blackholed) link by keep-alive.
 *
 *   npm run demo                            # an SSH server started inside this process (nothing else needed)
 *   SSH_HOST=box SSH_USER=me npm run demo   # a real server (uses your ~/.ssh config, keys, agent and known_hosts)
 *
 * Against the in-process server the demo also restarts it (`server.faults.restart()`) and
 * blackholes it (`server.faults.blackhole()`), printing one line per step.
 */
import { SshClient } from '../src/index.js';
import { target } from './lib/target.js';

async function main(): Promise<void> {
  const t = await target();
  const ssh = new SshClient({
    ...t.options,
    // Short timers so the demo shows a dead link within ~2 s (defaults: 15 s x 3, 20 s).
    keepaliveIntervalMs: 500,
    keepaliveCountMax: 2,
    connectTimeoutMs: 2_000,
    reconnect: { minDelayMs: 200, maxDelayMs: 1_000 },
  });
  ssh.on('state', ({ state, previous }) => console.log(`  [state] ${previous} -> ${state}`));
  ssh.on('disconnect', ({ cause }) => console.log(`  [disconnect] ${cause.code}: ${cause.message}`));
  ssh.on('reconnecting', ({ attempt, delayMs, cause }) => console.log(`  [reconnecting] attempt ${attempt} in ${delayMs} ms (last: ${cause.code})`));
  try {
    await ssh.connect();
    console.log(`connected: ${ssh.state}`);

    const who = await ssh.exec('echo "$(whoami)@$(hostname) $(uname -sr)"');
    console.log(`exec (command line): ${who.stdout.trim()}`);

    const awkward = await ssh.exec(['printf', '[%s]\\n', "it's", '$(not run)', 'a;b', '*']);
    console.log(`exec (argv, quoted for you):\n${awkward.stdout.trimEnd()}`);

    const failed = await ssh.exec('exit 44');
    console.log(`exit code: ${failed.exitCode}`);

    const piped = await ssh.exec('tr a-z A-Z', { stdin: 'stdin works\n' });
    console.log(`stdin: ${piped.stdout.trim()}`);

    const timedOut = await ssh.exec('sleep 30', { timeoutMs: 500 }).then(
      () => 'no timeout?',
      (e: { code: string }) => e.code,
    );
    console.log(`timeout: ${timedOut}`);

    const many = await Promise.all(Array.from({ length: 32 }, (_, i) => ssh.exec(`echo ${i}`)));
    console.log(`32 concurrent execs, all ok: ${many.every((r, i) => r.stdout.trim() === String(i))}`);

    console.log('health:', ssh.health());

    const server = t.server;
    if (server) {
      // 1. A server restart: same port and host key; the client reconnects by itself.
      let t0 = Date.now();
      const back = new Promise<void>((resolve) => ssh.once('ready', () => resolve()));
      await server.faults.restart();
      await back;
      console.log(`step restart: server.faults.restart() dropped the link; reconnected in ${Date.now() - t0} ms, same host key`);
      console.log(`step restart: exec after the reconnect -> ${(await ssh.exec('echo still here')).stdout.trim()}`);

      // 2. A dead link: the server stops answering (no FIN, no RST); only the keep-alive can tell.
      t0 = Date.now();
      const lost = new Promise<string>((resolve) => ssh.once('disconnect', ({ cause }) => resolve(cause.code)));
      server.faults.blackhole();
      const code = await lost;
      console.log(`step blackhole: server.faults.blackhole(); keep-alive declared the link dead after ${Date.now() - t0} ms (${code})`);
      // Issued while the link is down: waits for the reconnect (bounded by timeoutMs), then runs once.
      const during = ssh.exec('echo "issued while the link was dead"', { timeoutMs: 30_000 });
      await new Promise((r) => setTimeout(r, 500));
      t0 = Date.now();
      server.faults.resume();
      console.log(`step blackhole: server.faults.resume(); the queued exec ran after the reconnect -> ${(await during).stdout.trim()} (${Date.now() - t0} ms)`);
      console.log('health:', ssh.health());
    }
  } finally {
    await ssh.close();
    await t.cleanup();
  }
  console.log(`closed: ${ssh.state}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
