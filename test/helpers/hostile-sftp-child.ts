/**
 * Runs a hostile SFTP server (hostile-sftp-server.ts) in its own process, so that a test can
 * measure the client's memory alone. Usage: `node --import ./scripts/ts-node-register.mjs
 * test/helpers/hostile-sftp-child.ts <scenario>`; prints one JSON line `{ port, knownHosts }`
 * with the client options to use, then serves until stdin closes.
 *
 * Scenarios: `fan` (/fan: 1,000 subdirectories, each the same directory again; REALPATH lies),
 * `endless` (/endless: READDIR never ends, 1,000 new file names per reply).
 */
import { startHostileSftp, type HostileFs, type WireName } from './hostile-sftp-server.js';

const fan: WireName[] = Array.from({ length: 1000 }, (_, i) => ({ name: `d${i}`, attrs: { mode: 0o040755 } }));
const files = (prefix: string): WireName[] => Array.from({ length: 1000 }, (_, i) => ({ name: `${prefix}${i}`, attrs: { size: 6, mode: 0o100644 } }));

const scenarios: Record<string, HostileFs> = {
  fan: { node: (p) => (p === '/fan' || p.startsWith('/fan/') ? { type: 'dir', names: fan } : undefined) },
  endless: { node: (p) => (p === '/endless' ? { type: 'dir', list: (round) => files(`r${round}-`) } : undefined) },
};

const fs = scenarios[process.argv[2] ?? ''];
if (!fs) throw new Error(`unknown scenario ${process.argv[2]}`);
const server = await startHostileSftp(fs);
const o = server.clientOptions();
process.stdout.write(`${JSON.stringify({ port: server.port, knownHosts: o.knownHostsFiles })}\n`);
setInterval(() => process.stdout.write(`${JSON.stringify({ readdirs: server.log.readdirs })}\n`), 200).unref();
process.stdin.resume();
process.stdin.on('end', () => void server.close().then(() => process.exit(0)));
