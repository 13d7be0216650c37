/**
 * ssh-tether monitoring: Prometheus metrics on a local HTTP port and a health log line every
 * few seconds, for a bounded run.
 *
 *   npm run example -- examples/monitoring.ts           # an in-process SSH server, runs 10 s
 *   npm run example -- examples/monitoring.ts --once    # one scrape, printed, then exit
 *   SSH_HOST=box npm run example -- examples/monitoring.ts   # a real server (~/.ssh config, keys, known_hosts)
 *
 * While it runs: curl http://127.0.0.1:<port>/metrics
 */
import { createServer, get } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { SshClient } from '../src/index.js';
import { target } from './lib/target.js';
import { registerMetrics } from '../src/metrics/prometheus.js';

const RUN_MS = 10_000;
const LOG_EVERY_MS = 3_000;
const once = process.argv.includes('--once');

function fetchText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = get(url, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(5_000, () => req.destroy(new Error('scrape timed out')));
  });
}

async function main(): Promise<void> {
  const t = await target();
  const ssh = new SshClient({ ...t.options, keepaliveIntervalMs: t.server ? 500 : 1_000 });
  ssh.on('error', (e) => console.error(`[error] ${e.code}: ${e.message}`));
  ssh.on('state', ({ previous, state }) => console.log(`[state] ${previous} -> ${state}`));

  const registry = new Registry();
  const unregister = registerMetrics(ssh, { registry, labels: { target: [t.options.host].flat().join(',') } });
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: unknown) => res.writeHead(500).end(String(err)),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
  console.log(`metrics at ${url}`);

  const logHealth = (): void => {
    const h = ssh.health() as ReturnType<SshClient['health']> & { uptimeMs?: number; keepaliveRtt?: { count: number; p50Ms?: number } };
    console.log(
      `[health] state=${h.state} reconnects=${h.reconnects} channels=${h.openChannels}/${h.queuedChannels} queued` +
        ` rtt=${h.lastKeepaliveRttMs?.toFixed(2) ?? '-'} ms` +
        (h.keepaliveRtt ? ` p50=${h.keepaliveRtt.p50Ms?.toFixed(2) ?? '-'} ms over ${h.keepaliveRtt.count}` : '') +
        (h.uptimeMs !== undefined ? ` up=${h.uptimeMs} ms` : ''),
    );
  };
  const timer = setInterval(logHealth, LOG_EVERY_MS);
  try {
    await ssh.connect({ timeoutMs: 20_000 });
    logHealth();
    if (once) {
      await ssh.exec('true');
      await new Promise((r) => setTimeout(r, 1_200)); // let a keep-alive probe or two be measured
      console.log((await fetchText(url)).split('\n').filter((l) => l.startsWith('ssh_tether_')).join('\n'));
      return;
    }
    // A bounded run with some load, so the gauges move.
    const end = Date.now() + RUN_MS;
    while (Date.now() < end) {
      await Promise.all(Array.from({ length: 4 }, () => ssh.exec('sleep 0.2', { timeoutMs: 10_000 })));
      await new Promise((r) => setTimeout(r, 500));
    }
    console.log((await fetchText(url)).split('\n').filter((l) => l.startsWith('ssh_tether_up') || l.startsWith('ssh_tether_keepalive_rtt_seconds_count')).join('\n'));
  } finally {
    clearInterval(timer);
    unregister();
    await new Promise<void>((r) => server.close(() => r()));
    await ssh.close();
    await t.cleanup();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
