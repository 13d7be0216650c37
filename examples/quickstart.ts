/**
 * ssh-tether quickstart: connect, run commands, print health(), survive a server restart.
 *
 *   npm run demo                       # throwaway local sshd on a free loopback port
 *   SSH_HOST=box SSH_USER=me npm run demo   # a real server (uses your ~/.ssh keys, agent and known_hosts)
 *
 * Against a throwaway server the demo also restarts that server to show the client healing itself.
 */
import { SshClient, type SshClientOptions } from '../src/index.js';

interface Target {
  options: SshClientOptions;
  /** Stop and start the server (only for the throwaway one). */
  stop?: () => Promise<void>;
  start?: () => Promise<void>;
  cleanup: () => Promise<void>;
}

async function target(): Promise<Target> {
  const host = process.env.SSH_HOST;
  if (host) {
    return {
      options: {
        host,
        ...(process.env.SSH_PORT ? { port: Number(process.env.SSH_PORT) } : {}),
        ...(process.env.SSH_USER ? { username: process.env.SSH_USER } : {}),
      },
      cleanup: () => Promise.resolve(),
    };
  }
  // The throwaway server is the test harness's: OpenSSH sshd with fresh keys in a temp dir.
  const { startSshd } = await import('../test/helpers/sshd.js');
  const sshd = await startSshd();
  console.log(`started a throwaway OpenSSH server on ${sshd.host}:${sshd.port} (user ${sshd.username})`);
  return {
    options: {
      host: sshd.host,
      port: sshd.port,
      username: sshd.username,
      identityFiles: [sshd.privateKeyPath],
      knownHostsFiles: [sshd.knownHostsPath],
      agent: false,
      keepaliveIntervalMs: 1_000,
      keepaliveCountMax: 2,
      reconnect: { minDelayMs: 200, maxDelayMs: 2_000 },
    },
    stop: () => sshd.stop(),
    start: () => sshd.start(),
    cleanup: () => sshd.remove(),
  };
}

async function main(): Promise<void> {
  const t = await target();
  const ssh = new SshClient(t.options);
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

    if (t.stop && t.start) {
      console.log('stopping the server under the client...');
      await t.stop();
      await new Promise((r) => ssh.once('reconnecting', r));
      // Issued while the link is down: waits for the reconnect (bounded by timeoutMs), then runs once.
      const during = ssh.exec('echo "issued while the server was down"', { timeoutMs: 30_000 });
      await new Promise((r) => setTimeout(r, 1_500));
      console.log('starting the server again...');
      await t.start();
      console.log(`after reconnect: ${(await during).stdout.trim()}`);
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
