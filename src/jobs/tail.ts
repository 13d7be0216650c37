/**
 * The byte engine under {@link SshClient.follow} and `RemoteJob.output()`: reads a remote file
 * from an offset in bounded chunks with one short exec per poll, and keeps reading across
 * reconnects, rotation by rename and truncation in place, as `tail -F` does.
 *
 * Written here rather than taken from npm: no package follows a file over an SSH exec channel.
 *
 * One poll runs the script below with the file's path, the inode being followed, the offset and
 * the chunk size. It prints one header line, then the data:
 * - `none`: the path does not exist (and the followed inode was not found next to it);
 * - `cur INODE SIZE DONE`: the path is the followed file (or the first one seen), `SIZE` bytes
 *   long; the data that follows is the file from OFFSET, at most CHUNK bytes;
 * - `old INODE SIZE DONE`: the path now names another file (rotated by rename) but the followed
 *   file still exists under a new name in the same directory: data from it as above;
 * - `gone INODE`: rotated and the old file removed; `INODE` is the path's new file.
 * `DONE` is 1 when the optional done-file existed before the size was taken (a finished job:
 * everything it wrote is within SIZE).
 *
 * @module jobs/tail
 */
import { SshError } from '../errors.js';
import { sleep } from '../internal/cancel.js';
import { runScript, STEP_TIMEOUT_MS, untilDone, type JobsHost } from './remote.js';

const POLL_SCRIPT =
  'p=$1; ino=$2; off=$3; max=$4; donef=$5\n' +
  'case $p in "~/"*) p="$HOME/${p#"~/"}";; esac; case $donef in "~/"*) donef="$HOME/${donef#"~/"}";; esac\n' +
  String.raw`inode() { set -- $(ls -di -- "$1" 2>/dev/null); printf '%s' "$1"; }
done=0; [ -n "$donef" ] && [ -e "$donef" ] && done=1
cur=$(inode "$p")
if [ "$ino" != "-" ] && [ "$cur" != "$ino" ]; then
  dir=$(dirname -- "$p")
  old=$(find "$dir" -maxdepth 1 -inum "$ino" 2>/dev/null | head -n 1)
  if [ -z "$old" ]; then
    for f in "$dir"/* "$dir"/.[!.]*; do
      [ -f "$f" ] && [ "$(inode "$f")" = "$ino" ] && { old=$f; break; }
    done
  fi
  if [ -n "$old" ]; then
    size=$(wc -c < "$old" | tr -d ' ')
    echo "old $ino $size $done"
    [ "$size" -gt "$off" ] && [ "$max" -gt 0 ] && tail -c +$((off + 1)) -- "$old" | head -c "$max"
    exit 0
  fi
  [ -z "$cur" ] && { echo none; exit 0; }
  echo "gone $cur"
  exit 0
fi
[ -z "$cur" ] && { echo none; exit 0; }
size=$(wc -c < "$p" | tr -d ' ')
[ "$(inode "$p")" = "$cur" ] || { echo retry; exit 0; }
echo "cur $cur $size $done"
[ "$size" -gt "$off" ] && [ "$max" -gt 0 ] && tail -c +$((off + 1)) -- "$p" | head -c "$max"
exit 0`;

/** One poll's answer. */
type Poll =
  | { kind: 'none' }
  /** The path was renamed while the poll ran (its size may be the new file's): ask again. */
  | { kind: 'retry' }
  | { kind: 'gone'; inode: string }
  | { kind: 'cur' | 'old'; inode: string; size: number; done: boolean; data: Buffer };

async function poll(host: JobsHost, path: string, inode: string, offset: number, chunk: number, doneFile: string, signal: AbortSignal): Promise<Poll> {
  const r = await untilDone(() => runScript(host, POLL_SCRIPT, [path, inode, String(offset), String(chunk), doneFile], { signal, timeoutMs: STEP_TIMEOUT_MS }), signal);
  const out = r.stdout;
  const nl = out.indexOf(0x0a);
  const head = (nl < 0 ? out : out.subarray(0, nl)).toString('latin1').trim().split(' ');
  const data = nl < 0 ? Buffer.alloc(0) : out.subarray(nl + 1);
  const num = (s: string | undefined): number => {
    const n = Number(s);
    if (!Number.isSafeInteger(n) || n < 0) throw new SshError('ERR_SSH_JOB', `follow: the server's answer is malformed (${JSON.stringify(head.join(' ').slice(0, 80))})`);
    return n;
  };
  switch (head[0]) {
    case 'none':
      return { kind: 'none' };
    case 'retry':
      return { kind: 'retry' };
    case 'gone':
      return { kind: 'gone', inode: String(num(head[1])) };
    case 'cur':
    case 'old': {
      if (data.length > chunk) throw new SshError('ERR_SSH_JOB', `follow: the server sent ${data.length} bytes for a ${chunk}-byte read`);
      return { kind: head[0], inode: String(num(head[1])), size: num(head[2]), done: head[3] === '1', data };
    }
    default:
      if (r.exitCode === 127) throw new SshError('ERR_SSH_JOB', 'follow: the server has no POSIX sh with ls, wc, tail and head');
      throw new SshError('ERR_SSH_JOB', `follow: unexpected answer from the server (exit ${String(r.exitCode)}): ${JSON.stringify(r.stderr.toString('utf8').slice(0, 200))}`);
  }
}

/** A piece of the followed file: `offset` is where `data` starts in the file it came from. */
export interface TailChunk {
  data: Buffer;
  offset: number;
  /** Bumped each time the engine moves to another file (rotation, truncation): offsets restart at 0. */
  generation: number;
}

/** Options of {@link tailChunks}. @internal */
export interface TailOptions {
  /** `'start'`, `'end'` or a byte offset. */
  from: 'start' | 'end' | number;
  /** Keep waiting for more data (true), or stop at the current end (false). */
  follow: boolean;
  /** When this file exists and everything up to the size seen then was read, stop (a finished job). */
  doneFile?: string;
  pollIntervalMs: number;
  chunkBytes: number;
  signal: AbortSignal;
}

/**
 * Yields the file's bytes in order; every byte once. The offset advances only when the consumer
 * takes a chunk, so after a lost link the next poll asks again from where delivery stopped.
 * @internal
 */
export async function* tailChunks(host: JobsHost, path: string, o: TailOptions): AsyncGenerator<TailChunk, void, undefined> {
  let inode = '-';
  let offset = typeof o.from === 'number' ? o.from : 0;
  let generation = 0;
  let atEnd = o.from === 'end';
  // A rotated-away file is finished only after two empty reads in a row (a writer may still
  // append between our read and its reopen of the new file).
  let oldEmpty = 0;
  // Polls in a row that saw the followed file smaller than the offset (see below).
  let shrunk = 0;
  for (;;) {
    const p = await poll(host, path, inode, offset, atEnd ? 0 : o.chunkBytes, o.doneFile ?? '', o.signal);
    if (p.kind === 'retry') {
      await sleep(Math.min(o.pollIntervalMs, 50), o.signal);
      continue;
    }
    if (p.kind === 'none') {
      // A file that appears later is read from its start, as tail -F does.
      if (inode === '-') atEnd = false;
      if (!o.follow && inode === '-') throw new SshError('ERR_SSH_JOB', `follow: ${path}: no such file`);
      if (!o.follow) return;
      await sleep(o.pollIntervalMs, o.signal);
      continue;
    }
    if (p.kind === 'gone') {
      // Rotated, and the old file is gone: what it held past `offset` cannot be read any more.
      inode = p.inode;
      offset = 0;
      generation++;
      atEnd = false;
      continue;
    }
    if (inode === '-') {
      inode = p.inode;
      if (atEnd) {
        offset = p.size;
        atEnd = false;
        continue;
      }
    }
    if (p.kind === 'cur' && p.size < offset) {
      // Truncated in place (copytruncate): start again at 0. Believed only when a second poll
      // agrees: a rename racing the poll can pair the old file's inode with the new file's size,
      // and reading the renamed file again from 0 would deliver its lines twice.
      if (++shrunk < 2) {
        await sleep(Math.min(o.pollIntervalMs, 50), o.signal);
        continue;
      }
      shrunk = 0;
      offset = 0;
      generation++;
      continue;
    }
    shrunk = 0;
    if (p.data.length > 0) {
      oldEmpty = 0;
      const chunk: TailChunk = { data: p.data, offset, generation };
      yield chunk;
      offset += p.data.length;
      if (p.data.length === o.chunkBytes) continue;
    }
    if (p.kind === 'old') {
      if (p.data.length === 0 && ++oldEmpty >= 2) {
        // The old file is finished: go on with the file now at the path, from its start.
        inode = '-';
        offset = 0;
        generation++;
        oldEmpty = 0;
        continue;
      }
    } else if (offset >= p.size && (p.done || !o.follow)) {
      return;
    }
    await sleep(o.pollIntervalMs, o.signal);
  }
}
