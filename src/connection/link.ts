import type ssh2 from 'ssh2';

/**
 * One live, authenticated SSH transport (one connect attempt that reached `ready`).
 * Features (exec, forwards, SFTP) run their channels on a `Link` and tie their lifetime to
 * `link.signal`, which is aborted, with an `ERR_SSH_CONNECTION_LOST` {@link SshError} as its
 * `reason`, the moment this transport is known to be dead (keep-alive timeout, socket close,
 * `destroy()`), or with `ERR_SSH_CLOSED` when the client is closed.
 *
 * @hidden Not part of the public API (hidden, not stripped from the declarations: other modules import it).
 */
export interface Link {
  /** The ssh2 client of this attempt; never reused after the link dies. @internal */
  readonly client: ssh2.Client;
  /** Attempt number; increases by one on every connect attempt. */
  readonly epoch: number;
  /** Aborted (reason: an SshError) when this link dies. */
  readonly signal: AbortSignal;
}

/** Options of `LinkProvider.link`. */
export interface LinkWaitOptions {
  /** Give up waiting with `ERR_SSH_ABORTED` (the signal's SshError reason is kept when it is one). */
  signal?: AbortSignal | undefined;
  /** Give up waiting after this many milliseconds with `ERR_SSH_TIMEOUT`. */
  timeoutMs?: number | undefined;
}

/**
 * What features need from the connection layer.
 *
 * @hidden Not part of the public API.
 */
export interface LinkProvider {
  /**
   * Resolves with the live link, connecting first when the client is idle and waiting while it
   * reconnects. Rejects with `ERR_SSH_CLOSED` after close/destroy, with the fatal error when the
   * client gave up (auth, host key...), `ERR_SSH_TIMEOUT` or `ERR_SSH_ABORTED`.
   */
  link(options?: LinkWaitOptions): Promise<Link>;
  /** Calls `listener` for every new link (after each (re)connect). Returns an unsubscribe function. */
  onLink(listener: (link: Link) => void): () => void;
}

/** Options of `SshClient.connect()`. */
export interface ConnectOptions extends LinkWaitOptions {
  /**
   * Apply the `reconnect` policy (jittered backoff, `retries`) to this connect when it starts
   * from `'idle'`, as autossh does: for tunnel keepers that may start before the server is up.
   * Fatal errors (auth, host key, key file, config, a name that does not resolve) are never
   * retried. Without `timeoutMs`, the wait is then bounded by the policy only (not by
   * `operationTimeoutMs`). The option `retryFirstConnect` sets it for every connect.
   * @default the client's `retryFirstConnect` (false)
   */
  retry?: boolean | undefined;
}
