import { describe, expect, it } from 'vitest';
import { PassThrough } from 'node:stream';
import { ProgressBar, progressLine, redraw } from '../../src/cli/progress.js';

function sink(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let t = '';
  stream.on('data', (d: Buffer) => (t += d.toString()));
  return { stream, text: () => t };
}

/** What a terminal shows after `writes`: `\r` returns to column 0, characters overwrite. */
function screen(writes: string): string[] {
  const lines: string[] = [''];
  let col = 0;
  for (const ch of writes) {
    if (ch === '\r') col = 0;
    else if (ch === '\n') {
      lines.push('');
      col = 0;
    } else {
      const l = lines[lines.length - 1] ?? '';
      lines[lines.length - 1] = l.slice(0, col) + ch + l.slice(col + 1);
      col++;
    }
  }
  return lines;
}

describe('progress bar rendering', () => {
  it('redraw clears what is left of a longer previous line', () => {
    const long = progressLine({ transferredBytes: 1.5 * 1024 ** 3, totalBytes: 2 * 1024 ** 3, bytesPerSecond: 161.4 * 1024 ** 2 });
    const short = progressLine({ transferredBytes: 1.6 * 1024 ** 3, totalBytes: 2 * 1024 ** 3, bytesPerSecond: 9 * 1024 ** 2 });
    expect(short.length).toBeLessThan(long.length);
    const shown = screen(redraw(long, 0) + redraw(short, long.length));
    expect(shown).toEqual([short.padEnd(long.length)]);
    expect(shown[0]?.trimEnd()).toBe(short);
    expect(shown[0]).not.toMatch(/B\/sB\/s|\/s\S/);
    expect(redraw('abc', 0)).toBe('\rabc');
  });

  it('ProgressBar draws on a terminal, ends its line once, and draws nothing when disabled', () => {
    const s = sink();
    const bar = new ProgressBar(s.stream, true, 0);
    bar.update({ transferredBytes: 500, totalBytes: 1000, bytesPerSecond: 10 * 1024 ** 2 });
    bar.update({ transferredBytes: 1000, totalBytes: 1000, bytesPerSecond: 9 });
    bar.end();
    bar.end();
    const lines = screen(s.text());
    expect(lines).toEqual([progressLine({ transferredBytes: 1000, totalBytes: 1000, bytesPerSecond: 9 }).padEnd(lines[0]?.length ?? 0), '']);
    expect(s.text().endsWith('\n')).toBe(true);
    expect(s.text().split('\n').length).toBe(2);

    const off = sink();
    const none = new ProgressBar(off.stream, false);
    none.update({ transferredBytes: 1, totalBytes: 2, bytesPerSecond: 1 });
    none.end();
    expect(off.text()).toBe('');
  });

  it('formats sizes and rates; absurd numbers do not throw', () => {
    expect(progressLine({ transferredBytes: 512 * 1024, totalBytes: 1024 * 1024, bytesPerSecond: 2 * 1024 * 1024 }, 10)).toBe('[#####.....]  50% 512.0 KiB/1.0 MiB 2.0 MiB/s');
    expect(progressLine({ transferredBytes: 5, totalBytes: 0, bytesPerSecond: Number.NaN }, 4)).toBe('[####] 100% 5 B/0 B 0 B/s');
  });
});
