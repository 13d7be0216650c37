import { inspect } from 'node:util';
import { resolveSshConfig, applyAlgorithmSpec, type ResolvedSshConfig, type SshConfigWarning, type SshConfigField } from './config/ssh-config.js';
import type { ForwardListen } from './config/ssh-config/forward.js';
import type { ForwardSpecInput } from './forward/options.js';
import { resolveOptions, secureDefaultAlgorithms, type ResolvedOptions, type SshClientOptions } from './options.js';

/**
 * The settings one connect attempt uses, after precedence
 * explicit option > ssh_config > built-in default (ssh_config(5)), frozen.
 */
export interface EffectiveConfig extends ResolvedOptions {
  /** Keywords found in ssh_config that ssh-tether does not apply (ProxyCommand, Match exec...). */
  readonly warnings: readonly SshConfigWarning[];
  /** The ssh_config files that were read. */
  readonly sources: readonly string[];
}

/** ssh_config bind addresses as our forward options take them: unset or `localhost` is loopback. */
function bindHost(listen: Extract<ForwardListen, { kind: 'tcp' }>): string {
  const b = listen.bindAddress;
  if (b === undefined || b === '' || b === 'localhost') return '127.0.0.1';
  return b === '*' ? '0.0.0.0' : b;
}

/**
 * Maps ssh_config LocalForward / RemoteForward / DynamicForward to declared forwards. Forms we
 * cannot carry (a local listener on a Unix socket, a remote SOCKS forward, a remote forward to a
 * local Unix socket) are reported as warnings instead.
 */
export function configForwards(cfg: ResolvedSshConfig): { forwards: ForwardSpecInput[]; warnings: SshConfigWarning[] } {
  const forwards: ForwardSpecInput[] = [];
  const warnings: SshConfigWarning[] = [];
  for (const f of cfg.localForwards) {
    if (f.listen.kind !== 'tcp') {
      warnings.push({ keyword: 'LocalForward', message: `LocalForward listening on a Unix socket (${f.listen.path}) is not supported; ignored` });
      continue;
    }
    const target = f.connect.kind === 'tcp' ? { remoteHost: f.connect.host, remotePort: f.connect.port } : { remotePath: f.connect.path };
    forwards.push({ type: 'local', localHost: bindHost(f.listen), localPort: f.listen.port, ...target });
  }
  for (const f of cfg.remoteForwards) {
    if (f.connect === undefined || f.connect.kind !== 'tcp') {
      warnings.push({ keyword: 'RemoteForward', message: 'RemoteForward to a SOCKS proxy or a local Unix socket is not supported; ignored' });
      continue;
    }
    const listen = f.listen.kind === 'tcp' ? { remoteHost: f.listen.bindAddress ?? 'localhost', remotePort: f.listen.port } : { remotePath: f.listen.path };
    forwards.push({ type: 'remote', ...listen, localHost: f.connect.host, localPort: f.connect.port });
  }
  for (const f of cfg.dynamicForwards) {
    if (f.listen.kind !== 'tcp') {
      warnings.push({ keyword: 'DynamicForward', message: 'DynamicForward on a Unix socket is not supported; ignored' });
      continue;
    }
    forwards.push({ type: 'dynamic', localHost: bindHost(f.listen), localPort: f.listen.port });
  }
  return { forwards, warnings };
}

function pick<T>(explicit: boolean, fromConfig: boolean, explicitValue: T, configValue: T): T {
  if (explicit) return explicitValue;
  return fromConfig ? configValue : explicitValue;
}

/**
 * Applies a resolved ssh_config to the client options: a field the caller set explicitly wins;
 * otherwise a value the config set; otherwise the built-in default.
 */
export function applySshConfig(o: ResolvedOptions, cfg: ResolvedSshConfig): EffectiveConfig {
  const ex = (k: keyof SshClientOptions): boolean => o.explicitKeys.has(k);
  const set = (f: SshConfigField): boolean => cfg.explicit.has(f);
  const base = secureDefaultAlgorithms();
  const algo = (spec: string | undefined, defaults: readonly string[] | undefined, explicit: readonly string[] | undefined): string[] | undefined => {
    if (explicit) return [...explicit];
    if (spec === undefined || defaults === undefined) return undefined;
    return applyAlgorithmSpec(spec, defaults);
  };
  const algorithms = {
    ...(o.algorithms ?? {}),
  };
  const cipher = algo(cfg.ciphers, base.cipher as string[] | undefined, o.algorithms?.cipher);
  const kex = algo(cfg.kexAlgorithms, base.kex as string[] | undefined, o.algorithms?.kex);
  const hmac = algo(cfg.macs, base.hmac as string[] | undefined, o.algorithms?.hmac);
  const serverHostKey = algo(cfg.hostKeyAlgorithms, base.serverHostKey as string[] | undefined, o.algorithms?.serverHostKey);
  if (cipher) algorithms.cipher = cipher;
  if (kex) algorithms.kex = kex;
  if (hmac) algorithms.hmac = hmac;
  if (serverHostKey) algorithms.serverHostKey = serverHostKey;
  const compression = pick(ex('compression'), set('compression'), o.compression, cfg.compression);
  if (compression && !o.algorithms?.compress) algorithms.compress = [...COMPRESS_ON];
  const hasAlgorithms = Object.keys(algorithms).length > 0;
  const fromConfig = configForwards(cfg);
  const effective: EffectiveConfig = {
    ...o,
    host: cfg.hostName,
    port: pick(ex('port'), set('port'), o.port, cfg.port),
    username: pick(ex('username'), set('user'), o.username, cfg.user),
    identityFiles: pick(ex('identityFiles'), set('identityFiles'), o.identityFiles, cfg.identityFiles),
    identityFilesDefaulted: !ex('identityFiles') && !set('identityFiles'),
    identitiesOnly: pick(ex('identitiesOnly'), set('identitiesOnly'), o.identitiesOnly, cfg.identitiesOnly),
    agent: pick(ex('agent'), set('identityAgent'), o.agent, cfg.identityAgent),
    jump: pick(ex('jump'), set('proxyJump'), o.jump, cfg.proxyJump),
    keepaliveIntervalMs: pick(ex('keepaliveIntervalMs'), set('serverAliveIntervalMs'), o.keepaliveIntervalMs, cfg.serverAliveIntervalMs),
    keepaliveCountMax: pick(ex('keepaliveCountMax'), set('serverAliveCountMax'), o.keepaliveCountMax, cfg.serverAliveCountMax),
    connectTimeoutMs: pick(ex('connectTimeoutMs'), set('connectTimeoutMs') && cfg.connectTimeoutMs !== undefined, o.connectTimeoutMs, cfg.connectTimeoutMs ?? o.connectTimeoutMs),
    strictHostKeyChecking: pick(ex('strictHostKeyChecking'), set('strictHostKeyChecking'), o.strictHostKeyChecking, cfg.strictHostKeyChecking),
    knownHostsFiles: pick(ex('knownHostsFiles'), set('userKnownHostsFiles') && cfg.userKnownHostsFiles.length > 0, o.knownHostsFiles, cfg.userKnownHostsFiles),
    globalKnownHostsFiles: pick(ex('globalKnownHostsFiles'), set('globalKnownHostsFiles'), o.globalKnownHostsFiles, cfg.globalKnownHostsFiles),
    hashKnownHosts: pick(ex('hashKnownHosts'), set('hashKnownHosts'), o.hashKnownHosts, cfg.hashKnownHosts),
    forwardAgent: pick(ex('forwardAgent'), set('forwardAgent'), o.forwardAgent, cfg.forwardAgent),
    compression,
    algorithms: hasAlgorithms ? Object.freeze(algorithms) : undefined,
    preferredAuthentications: cfg.preferredAuthentications,
    passwordAuthentication: cfg.passwordAuthentication,
    pubkeyAuthentication: cfg.pubkeyAuthentication,
    batchMode: cfg.batchMode,
    forwards: ex('forwards') ? o.forwards : Object.freeze(fromConfig.forwards),
    exitOnForwardFailure: pick(ex('exitOnForwardFailure'), set('exitOnForwardFailure'), o.exitOnForwardFailure, cfg.exitOnForwardFailure),
    warnings: [...cfg.warnings, ...fromConfig.warnings],
    sources: cfg.sources,
  };
  Object.defineProperty(effective, inspect.custom, { enumerable: false, value: () => ({ ...effective }) });
  return Object.freeze(effective);
}

/** zlib methods offered for `compression: true` (OpenSSH's `Compression yes`), `none` last. */
const COMPRESS_ON: readonly string[] = Object.freeze(['zlib@openssh.com', 'zlib', 'none']);

/**
 * The options as they are when no ssh_config is read. `compression: true` offers zlib as
 * {@link applySshConfig} does, unless the caller named `algorithms.compress` itself.
 */
export function withoutSshConfig(o: ResolvedOptions): EffectiveConfig {
  const algorithms = o.compression && !o.algorithms?.compress ? Object.freeze({ ...(o.algorithms ?? {}), compress: [...COMPRESS_ON] }) : o.algorithms;
  const e: EffectiveConfig = { ...o, algorithms, warnings: [], sources: [] };
  Object.defineProperty(e, inspect.custom, { enumerable: false, value: () => ({ ...e }) });
  return Object.freeze(e);
}

/**
 * Resolves the settings of one connect attempt: reads ssh_config (unless `sshConfig: false`)
 * for `o.alias` and applies it under the explicit options.
 *
 * @throws {SshConfigError} `ERR_SSH_CONFIG` for an invalid config file, alias or user.
 */
export async function resolveEffective(o: ResolvedOptions): Promise<EffectiveConfig> {
  if (o.sshConfig === false) return withoutSshConfig(o);
  const cfg = await resolveSshConfig(o.alias, {
    ...(o.sshConfig !== undefined ? { sshConfig: typeof o.sshConfig === 'string' ? o.sshConfig : [...o.sshConfig] } : {}),
    ...(o.explicitKeys.has('username') ? { user: o.username } : {}),
    ...(o.explicitKeys.has('port') ? { port: o.port } : {}),
  });
  return applySshConfig(o, cfg);
}

/**
 * Shows the effective settings for a host alias the way a connect attempt would use them:
 * `options` (explicit) > ssh_config > built-in defaults. Secrets stay wrapped and redacted.
 * Follows ssh_config(5) and `ssh -G`.
 *
 * @param alias - a host name or ssh_config `Host` alias.
 * @param options - any {@link SshClientOptions} (except `host`, which is `alias`).
 * @returns the frozen {@link EffectiveConfig}, with `warnings` for unsupported keywords.
 * @throws {SshConfigError} `ERR_SSH_CONFIG` for bad options, an invalid alias or config file.
 *
 * @example
 * ```ts
 * const cfg = await resolveConfig('build-box');
 * console.log(cfg.host, cfg.port, cfg.username, cfg.jump, cfg.warnings);
 * ```
 */
export async function resolveConfig(alias: string, options: Omit<SshClientOptions, 'host'> = {}): Promise<EffectiveConfig> {
  return resolveEffective(resolveOptions({ ...options, host: alias }));
}
