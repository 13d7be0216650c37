/**
 * The short soak inside `npm test` (issue 6 item 14): 200 forced reconnect cycles with the SFTP
 * session, a local and a remote forward restored each time (one round trip through each forward
 * per cycle), then 3,000 execs; `SOAK_FULL=1` runs the full 1,000 / 10,000
 * (as `npm run soak` does). Leak figures must stay within `TOLERANCE` (test/soak/soak.ts).
 */
import { describe, expect, it } from 'vitest';
import { sharedSshd } from '../helpers/shared.js';
import { forwardRestorable, formatSnapshot, runSoak, sftpRestorable, TOLERANCE } from '../soak/soak.js';
import { reliabilitySuite } from './guard.js';

const FULL = process.env.SOAK_FULL === '1';
const suite = reliabilitySuite(FULL ? 'Soak (item 14), full: SOAK_FULL=1' : 'Soak (item 14), short (inside npm test)');
const cycles = FULL ? 1_000 : 200;
const execs = FULL ? 10_000 : 3_000;

describe('soak', () => {
  it(`${cycles} forced reconnect cycles with SFTP, a local and a remote forward restored, then ${execs} execs: heap, fds, resources, listeners and forward handles stay flat`, async () => {
    const forwards = forwardRestorable();
    const r = await runSoak({ server: sharedSshd(), cycles, execs, restorables: [sftpRestorable, forwards], log: (l) => console.log(l) });
    suite.figure('reconnect cycles survived', r.cyclesSurvived);
    suite.figure('round trips through the restored forwards (local + remote)', forwards.roundTrips());
    suite.figure('slowest wait for the remote forward after a reconnect', `${forwards.slowestRemoteUpMs()} ms`);
    suite.figure('execs run', r.execsRun);
    suite.figure('soak start', formatSnapshot(r.start));
    suite.figure('soak end', formatSnapshot(r.end));
    suite.figure('heap used delta after GC', `${(r.end.heapUsedMiB - r.start.heapUsedMiB).toFixed(1)} MiB`);
    suite.figure('open fd delta', r.end.fds - r.start.fds);
    suite.figure('tolerance', `heap ${TOLERANCE.heapMiB} MiB, fds ${TOLERANCE.fds}, ${TOLERANCE.resources} per resource type, listeners ${TOLERANCE.listeners}`);
    suite.figure('soak seconds', r.seconds);
    expect(r.cyclesSurvived).toBe(cycles);
    expect(r.execsRun).toBe(execs);
    expect(r.warnings).toEqual([]);
    expect(r.leaks).toEqual([]);
  }, FULL ? 3_600_000 : 120_000);
});
