import { SshChannelOpenError, SshError, mapChannelError } from '../errors.js';
import { abortReason, sleep } from '../internal/cancel.js';
import { backoffDelay, type BackoffPolicy } from '../internal/backoff.js';
import type { Link, LinkProvider } from '../connection/link.js';
import type { SessionLimiter } from './limiter.js';
import { publish, DIAGNOSTICS_CHANNELS as DC } from '../internal/diagnostics.js';

/** Something with a `close` event: an ssh2 Channel or SFTPWrapper. */
export interface Closable {
  once(event: 'close', listener: () => void): unknown;
}

/** Closes a channel that arrived after its caller gave up: `close()` for a Channel, `end()` for SFTP. */
export type Disposer<T> = (channel: T) => void;

const closeChannel: Disposer<{ close(): unknown }> = (ch) => {
  ch.close();
};

/** An open session channel and the slot it holds. */
export interface OpenedSession<T> {
  link: Link;
  channel: T;
  /** Frees the slot; also called automatically when the channel emits `close`. Idempotent. */
  release: () => void;
}

/** RFC 4254 5.1 reasons with which sshd refuses a session beyond `MaxSessions`. */
const SHORTAGE_REASONS = new Set([2, 4]);
/** Retries of a refusal while none of our channels is open (delays from {@link CHANNEL_RETRY_BACKOFF}). */
const TRANSIENT_RETRIES = 6;
/** Backoff of those brief retries (internal/backoff.ts): 5 ms doubling, at most 320 ms (about 0.3-0.6 s in all). */
export const CHANNEL_RETRY_BACKOFF: BackoffPolicy = Object.freeze({ minDelayMs: 5, maxDelayMs: 320, factor: 2 });
/** Immediate retries of a refusal that directly followed our own closes (see SessionLimiter.isCloseRace). */
const RACE_RETRIES = 8;
/** RFC 4254 5.1 SSH_OPEN_RESOURCE_SHORTAGE. */
const RESOURCE_SHORTAGE = 4;
/** RFC 4254 5.1 SSH_OPEN_ADMINISTRATIVELY_PROHIBITED. */
const PROHIBITED = 1;
/** tinysshd's description when a connection already has (or just had) its one session channel. */
const ONE_SESSION = /only one 'session' channel/i;

/**
 * The error for a session refused because the server allows one session channel per connection
 * (tinysshd: reason 1, "only one 'session' channel allowed").
 */
function oneSessionError(refusal: SshChannelOpenError, othersOpen: boolean): SshChannelOpenError {
  return new SshChannelOpenError(
    'the server allows one session channel per connection and refused another (reason 1, administratively prohibited: ' +
      `${JSON.stringify(refusal.message.replace(/^channel open failed: /, '').slice(0, 200))})` +
      (othersOpen
        ? ': close the open exec, spawn or SFTP session first, or use a separate SshClient for it'
        : ': the server did not free the session slot in time; run one operation per connection'),
    { reason: PROHIBITED, cause: refusal },
  );
}


/**
 * Opens a session channel through the `MaxSessions` limiter (RFC 4254 section 6.1).
 *
 * Waits (FIFO) for a slot and for a live link, then calls `open`. A refusal for lack of
 * resources while other sessions are open (sshd `MaxSessions`: "open failed", reason 2) lowers
 * the learned limit and waits for a channel to close, then tries again, instead of failing.
 * A server that allows one session per connection (tinysshd, reason 1 "only one 'session'
 * channel allowed") gets brief retries while none of our sessions is open (the server is still
 * closing the last one and then ends the connection: the retry runs on the next link), and a
 * clear `ERR_SSH_CHANNEL_OPEN` naming that cause otherwise.
 *
 * With `wait: false` (for channels worth opening only when a slot is free: the extra channels
 * of a striped SFTP transfer) nothing waits: no free slot rejects at once with
 * `ERR_SSH_CHANNEL_OPEN` (reason 4, resource shortage), and a refusal is not retried after a
 * backoff (a refusal while others are open still lowers the learned limit; one that directly
 * followed our own close is still retried at once).
 *
 * @throws {SshError} `ERR_SSH_CHANNEL_OPEN` (refused), `ERR_SSH_CONNECTION_LOST`,
 *   `ERR_SSH_TIMEOUT` / `ERR_SSH_ABORTED` (from `signal`), `ERR_SSH_CLOSED`.
 */
export async function openSession<T extends Closable>(
  provider: LinkProvider,
  limiter: SessionLimiter,
  open: (link: Link) => Promise<T>,
  signal: AbortSignal,
  dispose: Disposer<T> = closeChannel as unknown as Disposer<T>,
  wait = true,
): Promise<OpenedSession<T>> {
  let transientRetries = 0;
  let raceRetries = 0;
  // A slot kept across a retry of a refusal that followed our own closes (see below).
  let held: (() => void) | undefined;
  for (;;) {
    const release = held ?? (wait ? await limiter.acquire(signal) : limiter.tryAcquire());
    held = undefined;
    if (release === undefined) {
      throw new SshChannelOpenError(`no free session slot (${limiter.open} of ${limiter.learnedLimit} in use, MaxSessions)`, { reason: RESOURCE_SHORTAGE });
    }
    let link: Link;
    try {
      link = await provider.link({ signal });
    } catch (err) {
      release();
      throw err;
    }
    const mark = limiter.openMark();
    try {
      const channel = await openRaced(open(link), link, signal, dispose);
      limiter.confirmCloses(mark);
      let freed = false;
      // Our CLOSE is written by the time this runs: ssh2 answers the server's CLOSE before it
      // emits 'close', and a caller that frees the slot early has closed the channel itself.
      const free = (): void => {
        if (freed) return;
        freed = true;
        limiter.noteClosed();
        release();
      };
      channel.once('close', () => {
        free();
        publish(DC.channelClose, () => ({ client: limiter.owner, type: 'session', open: limiter.open, queued: limiter.queued }));
      });
      limiter.noteSuccess(mark);
      publish(DC.channelOpen, () => ({ client: limiter.owner, type: 'session', open: limiter.open, queued: limiter.queued }));
      return { link, channel, release: free };
    } catch (err) {
      const mapped = link.signal.aborted ? abortReason(link.signal) : mapChannelError(err);
      // The server answered this open: it had processed every close we wrote before it.
      if (mapped instanceof SshChannelOpenError) limiter.confirmCloses(mark);
      const shortage = mapped instanceof SshChannelOpenError && mapped.reason !== undefined && SHORTAGE_REASONS.has(mapped.reason) && !signal.aborted;
      if (shortage && raceRetries < RACE_RETRIES && limiter.isCloseRace(mark)) {
        // sshd refused while still counting a channel we had just closed (it frees the slot only
        // after dispatching the read that carried our CLOSE, and this open came in the same
        // read). Its answer came after that garbage collection, so the slot is free there now:
        // retry at once, keeping our slot, without lowering the learned limit.
        raceRetries += 1;
        limiter.noteRaceRetry();
        held = release;
        continue;
      }
      // A server with one session per connection (tinysshd) refuses with reason 1. While another
      // of our sessions is open that is final (waiting could be forever: an SFTP session); when
      // none is, the previous one is still closing on the server, which then ends the
      // connection: retry briefly, on the next link once the client has reconnected.
      const oneSession = mapped instanceof SshChannelOpenError && mapped.reason === PROHIBITED && ONE_SESSION.test(mapped.message);
      if (oneSession) {
        const othersOpen = limiter.open > 1;
        release();
        if (!othersOpen && !signal.aborted && transientRetries < TRANSIENT_RETRIES) {
          transientRetries += 1;
          await sleep(backoffDelay(transientRetries, CHANNEL_RETRY_BACKOFF), signal);
          continue;
        }
        throw oneSessionError(mapped, othersOpen);
      }
      if (shortage && limiter.open > 1) {
        // Others are open: the server holds fewer than we thought. Wait for one to close.
        limiter.lowerLimit();
        release();
        if (!wait) throw mapped;
        continue;
      }
      release();
      if (!wait) throw mapped;
      if (shortage && transientRetries < TRANSIENT_RETRIES) {
        // Nothing else of ours is open: a slot freed a moment ago may not be free on the server
        // yet. Back off briefly (bounded) before giving up.
        transientRetries += 1;
        await sleep(backoffDelay(transientRetries, CHANNEL_RETRY_BACKOFF), signal);
        continue;
      }
      throw mapped;
    }
  }
}

/** Races the open against the link dying and the caller's signal; a late channel is closed. */
function openRaced<T extends Closable>(p: Promise<T>, link: Link, signal: AbortSignal, dispose: Disposer<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const onAbort = function (this: AbortSignal): void {
      if (done) return;
      done = true;
      cleanup();
      reject(abortReason(this));
    };
    const cleanup = (): void => {
      link.signal.removeEventListener('abort', onAbort);
      signal.removeEventListener('abort', onAbort);
    };
    if (link.signal.aborted) return onAbort.call(link.signal);
    if (signal.aborted) return onAbort.call(signal);
    link.signal.addEventListener('abort', onAbort, { once: true });
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (ch) => {
        if (done) {
          dispose(ch);
          return;
        }
        done = true;
        cleanup();
        resolve(ch);
      },
      (err: unknown) => {
        if (done) return;
        done = true;
        cleanup();
        reject(err instanceof SshError ? err : mapChannelError(err));
      },
    );
  });
}

// Direct channels (`direct-tcpip`, `direct-streamlocal@openssh.com`) are opened in connection/
// (jump hops need them, and connection/ never imports channel/): re-exported here for features.
export { openDirect, type DirectOpenOptions, type DirectTarget } from '../connection/direct.js';
