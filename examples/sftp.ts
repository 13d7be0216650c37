/**
 * SFTP example: upload a directory with progress, list it, download a file with resume.
 *
 *   npm run example -- examples/sftp.ts          # against an in-process SSH server (nothing else needed)
 *   SSH_HOST=box SSH_USER=me npm run example -- examples/sftp.ts
 */
import { mkdtempSync, mkdirSync, writeFileSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { SshClient } from '../src/index.js';
import { target } from './lib/target.js';

async function main(): Promise<void> {
  const t = await target();
  const options = t.options;
  const cleanup = t.cleanup;

  // A local tree to upload.
  const local = mkdtempSync(join(tmpdir(), 'tether-sftp-example-'));
  mkdirSync(join(local, 'site/assets'), { recursive: true });
  writeFileSync(join(local, 'site/index.html'), '<h1>hello</h1>\n');
  for (let i = 0; i < 20; i++) writeFileSync(join(local, `site/assets/blob-${i}.bin`), randomBytes(64 * 1024));
  writeFileSync(join(local, 'site/big.bin'), randomBytes(32 * 1024 * 1024));

  const ssh = new SshClient(options);
  try {
    const sftp = await ssh.sftp();
    const home = await sftp.realpath('.');
    const remote = `${home}/tether-example-site`;
    await sftp.rm(remote, { recursive: true, force: true });

    let lastPct = -1;
    const summary = await sftp.putDir(join(local, 'site'), remote, {
      onProgress: ({ transferredBytes, totalBytes }) => {
        const pct = totalBytes ? Math.floor((transferredBytes / totalBytes) * 10) * 10 : 0;
        if (pct !== lastPct) console.log(`  upload ${pct}% (${transferredBytes} bytes)`);
        lastPct = pct;
      },
    });
    console.log(`uploaded: ${summary.copied.length} files copied, ${summary.skipped.length} skipped, ${summary.failed.length} failed`);

    for (const e of await sftp.list(remote)) console.log(`  ${e.type.padEnd(9)} ${String(e.size).padStart(10)}  ${e.name}`);

    // Download with resume: pretend an earlier download stopped half way.
    const dest = join(local, 'big.copy');
    const first = await sftp.get(`${remote}/big.bin`, dest);
    truncateSync(dest, Math.floor(first.transferredBytes / 2));
    const resumed = await sftp.get(`${remote}/big.bin`, dest, { resume: { verify: 'sha256' } });
    console.log(`resumed download from byte ${resumed.resumedFrom}: ${statSync(dest).size} bytes on disk`);

    await sftp.rm(remote, { recursive: true });
  } finally {
    await ssh.close();
    await cleanup();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
