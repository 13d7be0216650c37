/**
 * Prometheus metrics for an {@link SshClient}, with `prom-client` (an optional peer dependency):
 * `import { registerMetrics } from 'ssh-tether/prometheus'`.
 *
 * Metric names follow the Prometheus naming guide (base units: seconds, bytes; `_total` for
 * counters). Gauges and most counters are read from `client.health()` at scrape time, so a
 * scrape costs nothing between scrapes; the keep-alive histogram and the disconnect / auth
 * failure counters are fed by the client's events.
 *
 * @module prometheus
 */
import { Counter, Gauge, Histogram, register as defaultRegistry, type Registry } from 'prom-client';
import type { SshClient } from '../client.js';
import { SshAuthError, SshConfigError, SshError } from '../errors.js';

/** Options of {@link registerMetrics}. */
export interface RegisterMetricsOptions {
  /** The registry to register in. @default prom-client's global `register` */
  registry?: Registry;
  /**
   * Constant labels added to every series of this client, e.g. `{ host: 'db-1' }`. Several
   * clients can share a registry when each has distinct label values; every client on one
   * registry must use the same label names. Names must match `[a-zA-Z_][a-zA-Z0-9_]*` and must
   * not be `reason`, `forward`, `direction` or start with `__`.
   * @default {}
   */
  labels?: Record<string, string>;
  /** Bucket upper bounds of `ssh_tether_keepalive_rtt_seconds`, in seconds. @default [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] */
  rttBucketsSeconds?: number[];
}

/** The metric names registered by {@link registerMetrics}. */
export const METRIC_NAMES = Object.freeze([
  'ssh_tether_up',
  'ssh_tether_keepalive_rtt_seconds',
  'ssh_tether_reconnects_total',
  'ssh_tether_disconnects_total',
  'ssh_tether_auth_failures_total',
  'ssh_tether_channels_open',
  'ssh_tether_channel_queue_depth',
  'ssh_tether_forward_connections_total',
  'ssh_tether_forward_bytes_total',
  'ssh_tether_sftp_bytes_total',
] as const);

/**
 * The parts of `client.health()` read at scrape time. Every field is optional so that a client
 * that does not report one yet simply exports no series for it.
 */
interface HealthLike {
  state?: string;
  reconnects?: number;
  openChannels?: number;
  queuedChannels?: number;
  forwards?: ReadonlyArray<{ id?: string; connectionsTotal?: number; bytesIn?: number; bytesOut?: number }>;
  sftp?: { bytesRead?: number; bytesWritten?: number };
}

type Labels = Record<string, string>;

interface Binding {
  client: SshClient;
  labels: Labels;
  /** Event-fed counts, replayed at each scrape (so several clients never overwrite each other). */
  disconnects: Map<string, number>;
  authFailures: Map<string, number>;
}

interface Shared {
  labelNames: string[];
  bindings: Set<Binding>;
  rtt: Histogram;
  names: readonly string[];
}

const RESERVED = new Set(['reason', 'forward', 'direction', 'le']);
const DEFAULT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const perRegistry = new WeakMap<Registry, Shared>();

function safeHealth(client: SshClient): HealthLike {
  try {
    const h: HealthLike = client.health();
    return h;
  } catch {
    return {};
  }
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
}

/**
 * Classifies an authentication failure for the `reason` label: `key_file` for `ERR_SSH_KEY`,
 * else from {@link SshAuthError.reason} (`too_many_attempts`, `no_method`, `rejected`).
 */
function authReason(err: unknown): string | undefined {
  if (!(err instanceof SshError)) return undefined;
  if (err.code === 'ERR_SSH_KEY') return 'key_file';
  if (err.code !== 'ERR_SSH_AUTH') return undefined;
  if (!(err instanceof SshAuthError)) return 'rejected';
  switch (err.reason) {
    case 'too-many-attempts':
      return 'too_many_attempts';
    case 'no-credentials':
      return 'no_method';
    case 'all-methods-failed':
      return 'rejected';
  }
}

function validateLabels(labels: unknown): Labels {
  if (labels === undefined) return {};
  if (typeof labels !== 'object' || labels === null || Array.isArray(labels)) {
    throw new SshConfigError('registerMetrics: labels: expected an object of label name -> string value', { field: 'labels' });
  }
  const out: Labels = {};
  for (const [k, v] of Object.entries(labels)) {
    if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(k) || k.startsWith('__') || RESERVED.has(k)) {
      throw new SshConfigError(
        `registerMetrics: labels: invalid label name "${k}"; accepted: [a-zA-Z_][a-zA-Z0-9_]*, not starting with __, not reason/forward/direction/le`,
        { field: `labels.${k}` },
      );
    }
    if (typeof v !== 'string') throw new SshConfigError(`registerMetrics: labels.${k}: expected a string value`, { field: `labels.${k}` });
    out[k] = v;
  }
  return out;
}

function createShared(registry: Registry, labelNames: string[], buckets: number[]): Shared {
  const shared: Shared = { labelNames, bindings: new Set(), rtt: undefined as unknown as Histogram, names: METRIC_NAMES };
  const each = (fn: (b: Binding, h: HealthLike) => void): void => {
    for (const b of shared.bindings) fn(b, safeHealth(b.client));
  };
  const registers = [registry];
  new Gauge({
    name: 'ssh_tether_up',
    help: 'Whether the SSH connection is up (state ready): 1 or 0.',
    labelNames,
    registers,
    collect() {
      this.reset();
      each((b, h) => this.set(b.labels, h.state === 'ready' ? 1 : 0));
    },
  });
  shared.rtt = new Histogram({
    name: 'ssh_tether_keepalive_rtt_seconds',
    help: 'Round trip of answered keep-alive probes (keepalive@openssh.com), in seconds.',
    labelNames,
    buckets,
    registers,
  });
  new Counter({
    name: 'ssh_tether_reconnects_total',
    help: 'Successful reconnects since the client was created.',
    labelNames,
    registers,
    collect() {
      this.reset();
      each((b, h) => {
        const v = num(h.reconnects);
        if (v !== undefined) this.inc(b.labels, v);
      });
    },
  });
  new Counter({
    name: 'ssh_tether_disconnects_total',
    help: 'Live links lost, by reason (the error code of the cause, e.g. ERR_SSH_KEEPALIVE_TIMEOUT).',
    labelNames: [...labelNames, 'reason'],
    registers,
    collect() {
      this.reset();
      for (const b of shared.bindings) for (const [reason, n] of b.disconnects) this.inc({ ...b.labels, reason }, n);
    },
  });
  new Counter({
    name: 'ssh_tether_auth_failures_total',
    help: 'Authentication failures, by reason: rejected, too_many_attempts (MaxAuthTries), no_method, key_file.',
    labelNames: [...labelNames, 'reason'],
    registers,
    collect() {
      this.reset();
      for (const b of shared.bindings) for (const [reason, n] of b.authFailures) this.inc({ ...b.labels, reason }, n);
    },
  });
  new Gauge({
    name: 'ssh_tether_channels_open',
    help: 'Session channels open now.',
    labelNames,
    registers,
    collect() {
      this.reset();
      each((b, h) => {
        const v = num(h.openChannels);
        if (v !== undefined) this.set(b.labels, v);
      });
    },
  });
  new Gauge({
    name: 'ssh_tether_channel_queue_depth',
    help: 'Operations waiting for a session channel (MaxSessions reached).',
    labelNames,
    registers,
    collect() {
      this.reset();
      each((b, h) => {
        const v = num(h.queuedChannels);
        if (v !== undefined) this.set(b.labels, v);
      });
    },
  });
  new Counter({
    name: 'ssh_tether_forward_connections_total',
    help: 'Connections carried by each port forward since it was opened.',
    labelNames: [...labelNames, 'forward'],
    registers,
    collect() {
      this.reset();
      each((b, h) => {
        for (const f of h.forwards ?? []) {
          const v = num(f.connectionsTotal);
          if (typeof f.id === 'string' && v !== undefined) this.inc({ ...b.labels, forward: f.id }, v);
        }
      });
    },
  });
  new Counter({
    name: 'ssh_tether_forward_bytes_total',
    help: 'Bytes carried by each port forward: direction "in" (server to local side) or "out" (local side to server).',
    labelNames: [...labelNames, 'forward', 'direction'],
    registers,
    collect() {
      this.reset();
      each((b, h) => {
        for (const f of h.forwards ?? []) {
          if (typeof f.id !== 'string') continue;
          const bin = num(f.bytesIn);
          const bout = num(f.bytesOut);
          if (bin !== undefined) this.inc({ ...b.labels, forward: f.id, direction: 'in' }, bin);
          if (bout !== undefined) this.inc({ ...b.labels, forward: f.id, direction: 'out' }, bout);
        }
      });
    },
  });
  new Counter({
    name: 'ssh_tether_sftp_bytes_total',
    help: 'SFTP payload bytes: direction "read" (downloaded) or "write" (uploaded).',
    labelNames: [...labelNames, 'direction'],
    registers,
    collect() {
      this.reset();
      each((b, h) => {
        const r = num(h.sftp?.bytesRead);
        const w = num(h.sftp?.bytesWritten);
        if (r !== undefined) this.inc({ ...b.labels, direction: 'read' }, r);
        if (w !== undefined) this.inc({ ...b.labels, direction: 'write' }, w);
      });
    },
  });
  return shared;
}

/**
 * Exposes a client's health as Prometheus metrics in `registry`:
 *
 * | metric | type | labels |
 * |---|---|---|
 * | `ssh_tether_up` | gauge (1 when `ready`) | |
 * | `ssh_tether_keepalive_rtt_seconds` | histogram | |
 * | `ssh_tether_reconnects_total` | counter | |
 * | `ssh_tether_disconnects_total` | counter | `reason` (error code) |
 * | `ssh_tether_auth_failures_total` | counter | `reason`: `rejected`, `too_many_attempts`, `no_method`, `key_file` |
 * | `ssh_tether_channels_open` | gauge | |
 * | `ssh_tether_channel_queue_depth` | gauge | |
 * | `ssh_tether_forward_connections_total` | counter | `forward` (forward id) |
 * | `ssh_tether_forward_bytes_total` | counter | `forward`, `direction`: `in`/`out` |
 * | `ssh_tether_sftp_bytes_total` | counter | `direction`: `read`/`write` |
 *
 * plus the constant `labels` on every series. Several clients may share a registry (with
 * distinct label values). Series for figures the client's `health()` does not report are left out.
 *
 * @param client - the client to observe (it is never connected or changed by this).
 * @param options - `registry` (default: prom-client's global registry), `labels`, `rttBucketsSeconds`.
 * @returns an unregister function: removes this client's event listeners and series, and the
 *   metrics themselves from the registry once no client is left. Idempotent.
 * @throws {SshConfigError} `ERR_SSH_CONFIG` (field `labels...`) for an invalid label name or
 *   value, or label names that differ from those already used on the registry; (field `client`)
 *   when `client` has no `health()`/`on()`; (field `registry`) when the registry already holds
 *   a metric with one of these names not created by this function.
 *
 * @example
 * ```ts
 * import { Registry } from 'prom-client';
 * import { registerMetrics } from 'ssh-tether/prometheus';
 * const registry = new Registry();
 * const unregister = registerMetrics(ssh, { registry, labels: { host: 'db-1' } });
 * // GET /metrics -> res.end(await registry.metrics())
 * ```
 */
export function registerMetrics(client: SshClient, options: RegisterMetricsOptions = {}): () => void {
  if (typeof client !== 'object' || client === null || typeof client.health !== 'function' || typeof client.on !== 'function') {
    throw new SshConfigError('registerMetrics: client: expected an SshClient', { field: 'client' });
  }
  const registry = options.registry ?? defaultRegistry;
  const labels = validateLabels(options.labels);
  const labelNames = Object.keys(labels).sort();
  let shared = perRegistry.get(registry);
  if (shared) {
    if (shared.labelNames.join(',') !== labelNames.join(',')) {
      throw new SshConfigError(
        `registerMetrics: labels: this registry's ssh-tether metrics use the label names [${shared.labelNames.join(', ')}]; got [${labelNames.join(', ')}]`,
        { field: 'labels' },
      );
    }
  } else {
    const clash = METRIC_NAMES.find((n) => registry.getSingleMetric(n) !== undefined);
    if (clash) {
      throw new SshConfigError(`registerMetrics: registry: a metric named ${clash} is already registered (not by registerMetrics)`, { field: 'registry' });
    }
    const buckets = options.rttBucketsSeconds ?? DEFAULT_BUCKETS;
    if (!Array.isArray(buckets) || buckets.length === 0 || buckets.some((x) => typeof x !== 'number' || !(x > 0))) {
      throw new SshConfigError('registerMetrics: rttBucketsSeconds: expected a non-empty array of positive numbers (seconds)', { field: 'rttBucketsSeconds' });
    }
    shared = createShared(registry, labelNames, [...buckets].sort((a, b) => a - b));
    perRegistry.set(registry, shared);
  }
  const s = shared;
  const binding: Binding = { client, labels, disconnects: new Map(), authFailures: new Map() };
  s.bindings.add(binding);

  const onKeepalive = (e: { rttMs: number }): void => {
    if (typeof e.rttMs === 'number' && Number.isFinite(e.rttMs) && e.rttMs >= 0) s.rtt.observe(labels, e.rttMs / 1000);
  };
  const onDisconnect = (e: { cause: { code: string } }): void => {
    const reason = typeof e.cause.code === 'string' ? e.cause.code : 'unknown';
    binding.disconnects.set(reason, (binding.disconnects.get(reason) ?? 0) + 1);
  };
  const onError = (err: { code: string; message: string }): void => {
    const reason = authReason(err);
    if (reason !== undefined) binding.authFailures.set(reason, (binding.authFailures.get(reason) ?? 0) + 1);
  };
  client.on('keepalive', onKeepalive);
  client.on('disconnect', onDisconnect);
  client.on('error', onError);

  let done = false;
  return () => {
    if (done) return;
    done = true;
    client.off('keepalive', onKeepalive);
    client.off('disconnect', onDisconnect);
    client.off('error', onError);
    s.bindings.delete(binding);
    try {
      s.rtt.remove(labels);
    } catch {
      // no series for these labels
    }
    if (s.bindings.size === 0) {
      for (const n of s.names) registry.removeSingleMetric(n);
      perRegistry.delete(registry);
    }
  };
}
