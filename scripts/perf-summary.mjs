/* eslint-disable @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-return -- a measurement script: V8 profile JSON and IPC messages are untyped */
// Splits a `perf record -g` profile of the scripts/profile-get.ts child (on-CPU samples, all
// threads) into where the CPU went. Usage: perf script -i FILE | node scripts/perf-summary.mjs
// Each sample is put in the first category that matches its stack, leaf first:
//   GC (any V8 heap/marking/scavenge/sweep frame), ssh2 cipher (AES-GCM native code), kernel
//   (leaf in the kernel; split by the syscall/stack: socket read, file write, other), memcpy
//   (attributed to the nearest JS frame), then JS/builtins attributed to the nearest JS frame's
//   file: ssh2, ssh-tether (dist/ or src/), node internals; the rest is "other native".
import readline from 'node:readline';

const rl = readline.createInterface({ input: process.stdin });
const samples = [];
let cur;
rl.on('line', (line) => {
  if (line.trim() === '') {
    if (cur) samples.push(cur);
    cur = undefined;
    return;
  }
  if (!line.startsWith('\t') && !line.startsWith(' ')) {
    const [, pid, tid] = /^\S+\s+(?:(\d+)\/)?(\d+)/.exec(line) ?? [];
    cur = { head: line, main: pid === undefined || pid === tid, frames: [] };
    return;
  }
  const m = /^\s+[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$/.exec(line);
  if (m && cur) cur.frames.push({ sym: m[1], dso: m[2] });
});

function jsFile(frames) {
  for (const f of frames) {
    if (f.sym.startsWith('JS:') || /^(LazyCompile|Function|Builtin|Script):/.test(f.sym)) {
      const u = f.sym;
      if (u.includes('/ssh2/')) return u.includes('/protocol/crypto') ? 'ssh2 crypto.js (JS)' : 'ssh2 (JS)';
      if (u.includes('/dist/') || u.includes('/src/')) return 'ssh-tether (JS)';
      if (u.includes('node:')) return 'node internals (JS)';
      return 'other JS';
    }
  }
  return undefined;
}

function category(s) {
  const fr = s.frames;
  const leaf = fr[0]?.sym ?? '';
  const all = fr.map((f) => f.sym).join(' ');
  if (/v8::internal::(Heap::|Scavenger|ScavengerCollector|MarkCompact|ConcurrentMarking|IncrementalMarking|Sweeper|MinorMarkCompact|MarkingVisitor|ArrayBufferSweeper|GCTracer|MemoryAllocator|Heap::CollectGarbage)/.test(all)) {
    return 'GC (V8 heap)';
  }
  if (/aesni|gcm_|ghash|EVP_|AES_/.test(leaf)) return 'ssh2 cipher (AES-GCM native)';
  if (fr[0]?.dso === '[kernel.kallsyms]' || /\[k\]/.test(leaf)) {
    if (/tcp_recvmsg|sock_read_iter|tcp_read|recvmsg/.test(all)) return 'kernel: socket read';
    if (/tcp_sendmsg|sock_write_iter/.test(all)) return 'kernel: socket write';
    if (/ext4_buffered_write|generic_perform_write|ext4_file_write|vfs_write|ksys_pwrite|pwrite/.test(all)) return 'kernel: file write';
    if (/ext4_file_read|filemap_read|vfs_read/.test(all)) return 'kernel: file read';
    if (/epoll/.test(all)) return 'kernel: epoll';
    if (/futex/.test(all)) return 'kernel: futex (thread wake)';
    if (/mmap|munmap|brk|page_fault|exc_page_fault/.test(all)) return 'kernel: memory (mmap/fault)';
    return 'kernel: other';
  }
  if (/memmove|memcpy/.test(leaf)) return `memcpy < ${jsFile(fr) ?? 'native'}`;
  if (/malloc|free|_int_/.test(leaf)) return `malloc/free < ${jsFile(fr) ?? 'native'}`;
  const js = jsFile(fr);
  if (js) return js;
  return 'other native';
}

rl.on('close', () => {
  if (cur) samples.push(cur);
  const cats = new Map();
  for (const s of samples) {
    const c = `${s.main ? 'main  ' : 'worker'} ${category(s)}`;
    cats.set(c, (cats.get(c) ?? 0) + 1);
  }
  const n = samples.length;
  console.log(`${n} samples`);
  for (const [c, k] of [...cats].sort((a, b) => b[1] - a[1])) console.log(`${((100 * k) / n).toFixed(1).padStart(6)}%  ${c}`);
});
