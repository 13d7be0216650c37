// The pid line of the stoppable wrapper under a PTY (issue 16 §3): it arrives on stdout (the
// terminal merges stderr), ends in \r\n, and may follow the terminal's echo of early input.
import { describe, expect, it } from 'vitest';
import { PidLineStripper, PTY_MARKER_SEARCH_BYTES } from '../../src/exec/process.js';

/** Runs `chunks` through a PTY-mode stripper; returns the output and the reported pids. */
async function run(chunks: Buffer[]): Promise<{ out: string; pids: string[] }> {
  const pids: string[] = [];
  const s = new PidLineStripper((pid, mode) => pids.push(`${pid}:${mode}`), true);
  const parts: Buffer[] = [];
  s.on('data', (c: Buffer) => parts.push(c));
  const ended = new Promise((r) => s.on('end', r));
  for (const c of chunks) s.write(c);
  s.end();
  await ended;
  return { out: Buffer.concat(parts).toString('latin1'), pids };
}

/** Every way of cutting `text` in two, plus one byte per chunk. */
function splits(text: string): Buffer[][] {
  const b = Buffer.from(text, 'latin1');
  const out: Buffer[][] = [[...b].map((x) => Buffer.from([x]))];
  for (let i = 0; i <= b.length; i++) out.push([b.subarray(0, i), b.subarray(i)]);
  return out;
}

describe('PidLineStripper in PTY mode', () => {
  it('removes the \\r\\n-terminated pid line and reports the pid, however the bytes are cut', async () => {
    for (const chunks of splits('ssh-tether:pid=4242:group\r\nhello\r\n')) {
      expect(await run(chunks)).toEqual({ out: 'hello\r\n', pids: ['4242:group'] });
    }
  });

  it('finds the line after echoed input and keeps that input', async () => {
    for (const chunks of splits('typed early\r\nssh-tether:pid=77:tree\r\nout')) {
      expect(await run(chunks)).toEqual({ out: 'typed early\r\nout', pids: ['77:tree'] });
    }
  });

  it('passes output without a pid line through byte for byte, including a partial marker at the end', async () => {
    for (const text of ['plain output\r\n', 'ends with ssh-teth', 'ssh-tether:pid=', 'x\r\nssh-tether:pid=12']) {
      for (const chunks of splits(text)) expect(await run(chunks)).toEqual({ out: text, pids: [] });
    }
  });

  it('leaves a malformed pid line alone and reports nothing', async () => {
    const text = 'ssh-tether:pid=12x:group\r\nrest';
    expect(await run([Buffer.from(text, 'latin1')])).toEqual({ out: text, pids: [] });
  });

  it('stops looking after PTY_MARKER_SEARCH_BYTES: a later marker is output, only the first line is taken', async () => {
    const filler = 'y'.repeat(PTY_MARKER_SEARCH_BYTES + 10);
    const late = `${filler}ssh-tether:pid=99:group\r\n`;
    for (const chunks of [[Buffer.from(late, 'latin1')], [Buffer.from(filler), Buffer.from(late.slice(filler.length))]]) {
      const r = await run(chunks);
      expect(r.out === late).toBe(true);
      expect(r.pids).toEqual([]);
    }
    const twice = 'ssh-tether:pid=5:group\r\nssh-tether:pid=6:group\r\n';
    expect(await run([Buffer.from(twice, 'latin1')])).toEqual({ out: 'ssh-tether:pid=6:group\r\n', pids: ['5:group'] });
  });
});
