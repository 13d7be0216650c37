/* eslint-disable @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-return -- a measurement script: V8 profile JSON and IPC messages are untyped */
// Summarizes a V8 .cpuprofile (node --cpu-prof): self time by category and the top functions.
// Usage: node scripts/cpuprofile-summary.mjs FILE.cpuprofile [top=30]
// Categories: ssh2 crypto (lib/protocol/crypto.js and the native binding below it), ssh2
// protocol/parse (rest of ssh2), ours (ssh-tether src/ or dist/), node internals (node:*), GC,
// (program) (native work V8 does not attribute: syscalls, the native decipher binding), idle.
import fs from 'node:fs';
import path from 'node:path';

const file = process.argv[2];
const top = Number(process.argv[3] ?? 30);
const prof = JSON.parse(fs.readFileSync(file, 'utf8'));
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const self = new Map();
const dt = prof.timeDeltas;
for (let i = 0; i < prof.samples.length; i++) {
  const id = prof.samples[i];
  self.set(id, (self.get(id) ?? 0) + (dt[i] ?? 0));
}
const parent = new Map();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

function category(n) {
  const { url, functionName } = n.callFrame;
  if (functionName === '(garbage collector)') return 'GC';
  if (functionName === '(idle)') return 'idle';
  if (functionName === '(program)') return '(program)';
  if (url.includes('/ssh2/lib/protocol/crypto')) return 'ssh2 crypto';
  if (url.includes('/ssh2/')) return 'ssh2 protocol/parse';
  if (url.includes('/src/') || url.includes('/dist/')) return 'ours';
  if (url.startsWith('node:')) return 'node internals';
  if (url === '') {
    // native function: attribute to the nearest JS caller's category
    let p = parent.get(n.id);
    while (p !== undefined) {
      const pn = byId.get(p);
      if (pn.callFrame.url !== '') return `${category(pn)} (native)`;
      p = parent.get(p);
    }
    return 'native';
  }
  return 'other js';
}

const cats = new Map();
const fns = new Map();
let total = 0;
let busy = 0;
for (const [id, us] of self) {
  const n = byId.get(id);
  const c = category(n);
  cats.set(c, (cats.get(c) ?? 0) + us);
  total += us;
  if (c !== 'idle') busy += us;
  const f = n.callFrame;
  const key = `${f.functionName || '(anon)'} ${f.url ? path.basename(f.url) : ''}:${f.lineNumber + 1} [${c}]`;
  fns.set(key, (fns.get(key) ?? 0) + us);
}
console.log(`${file}: ${(total / 1e6).toFixed(2)} s sampled, ${(busy / 1e6).toFixed(2)} s busy`);
for (const [c, us] of [...cats].sort((a, b) => b[1] - a[1])) {
  console.log(`  ${c.padEnd(34)} ${(us / 1e3).toFixed(0).padStart(7)} ms  ${c === 'idle' ? '' : `${((100 * us) / busy).toFixed(1)}% of busy`}`);
}
console.log('top functions (self):');
for (const [k, us] of [...fns].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`  ${(us / 1e3).toFixed(1).padStart(8)} ms  ${k}`);
}
