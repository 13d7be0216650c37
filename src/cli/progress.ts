/**
 * The transfer progress bar of `ssh-tether get`/`put`: one line redrawn with `\r`, only on a
 * terminal (as scp draws its progress meter only when stdout is a TTY).
 *
 * @module cli/progress
 */
import type { TransferProgress } from '../sftp/index.js';

/** `1536` -> `1.5 KiB` (binary units; bytes without a decimal). */
export function human(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Number.isFinite(n) && n > 0 ? n : 0;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[i] ?? 'B'}`;
}

/** One progress bar line: `[#####.....]  50% 1.0 MiB/2.0 MiB 3.0 MiB/s`. */
export function progressLine(p: TransferProgress, width = 30): string {
  const frac = p.totalBytes > 0 ? Math.min(1, p.transferredBytes / p.totalBytes) : 1;
  const filled = Math.round(frac * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${`${Math.floor(frac * 100)}%`.padStart(4)} ${human(p.transferredBytes)}/${human(p.totalBytes)} ${human(p.bytesPerSecond)}/s`;
}

/**
 * What to write to redraw the bar: carriage return, the line, and spaces over what is left of
 * a longer previous line (so `161.4 MiB/s` after `1.2 GiB/s...` leaves no `B/s` behind).
 *
 * @param line - the new line (no control characters).
 * @param previousLength - the length of the line drawn before (0 for the first).
 */
export function redraw(line: string, previousLength: number): string {
  return `\r${line}${' '.repeat(Math.max(0, previousLength - line.length))}`;
}

/** A progress bar on a stream; draws nothing unless `enabled` (the stream is a terminal). */
export class ProgressBar {
  #drawn = 0;
  #lastAt = 0;
  constructor(
    private readonly stream: NodeJS.WritableStream,
    readonly enabled: boolean,
    private readonly minIntervalMs = 100,
  ) {}

  /** Redraws the bar (at most every `minIntervalMs`, always for the final 100%). */
  update(p: TransferProgress): void {
    if (!this.enabled) return;
    const now = performance.now();
    const final = p.totalBytes > 0 && p.transferredBytes >= p.totalBytes;
    if (!final && this.#drawn > 0 && now - this.#lastAt < this.minIntervalMs) return;
    this.#lastAt = now;
    const line = progressLine(p);
    this.stream.write(redraw(line, this.#drawn));
    this.#drawn = line.length;
  }

  /** Ends the bar's line with a newline (after the transfer, on error, on Ctrl-C); idempotent. */
  end(): void {
    if (this.#drawn === 0) return;
    this.#drawn = 0;
    this.stream.write('\n');
  }
}
