/**
 * Option shapes of the three forward kinds (zod 4, strict, with defaults), shared by
 * `forwardLocal()` / `forwardRemote()` / `forwardDynamic()` and the declared `forwards: [...]`
 * client option (ssh_config `LocalForward`, `RemoteForward`, `DynamicForward`).
 *
 * @module forward/options
 */
import { z } from 'zod';
import { timeoutMsSchema, zodToConfigError, zodToError } from '../internal/validate.js';
import { DEFAULTS, type ForwardDefaults } from '../defaults.js';

/**
 * The defaults of the forward options and of the forward manager: {@link DEFAULTS}.forward plus
 * `connectionWaitMs` ({@link DEFAULTS}.forwardConnectionWaitMs). Durations in ms.
 *
 * @deprecated Read {@link DEFAULTS}.forward and {@link DEFAULTS}.forwardConnectionWaitMs: one
 *   object holds every default. Kept as a frozen view of the same values.
 */
export const FORWARD_DEFAULTS: ForwardDefaults & { readonly connectionWaitMs: number } = Object.freeze({
  ...DEFAULTS.forward,
  connectionWaitMs: DEFAULTS.forwardConnectionWaitMs,
});

const PORT_MSG = 'expected an integer port from 0 to 65535 (0: any free port)';
const port = z
  .number({ error: PORT_MSG })
  .int({ error: PORT_MSG })
  .min(0, { error: PORT_MSG })
  .max(65535, { error: PORT_MSG });
const targetPort = z
  .number({ error: 'expected an integer port from 1 to 65535' })
  .int({ error: 'expected an integer port from 1 to 65535' })
  .min(1, { error: 'expected an integer port from 1 to 65535' })
  .max(65535, { error: 'expected an integer port from 1 to 65535' });
const host = (what: string) =>
  z.string({ error: `expected ${what} as a non-empty host name or address` }).min(1, { error: `expected ${what} as a non-empty host name or address` });
const socketPath = (what: string) =>
  z.string({ error: `expected ${what} as a non-empty Unix socket path` }).min(1, { error: `expected ${what} as a non-empty Unix socket path` });

/**
 * Options of a local forward (ssh(1) `-L`, ssh_config `LocalForward`): a listener on
 * `localHost:localPort` whose connections are carried to `remoteHost:remotePort` as seen from
 * the server (`direct-tcpip`, RFC 4254 section 7.2), or to the server's Unix socket
 * `remotePath` (`direct-streamlocal@openssh.com`, OpenSSH PROTOCOL 2.4). Exactly one of
 * `remotePort` (with `remoteHost`) or `remotePath` is required.
 */
export const localForwardOptionsSchema = z
  .strictObject({
    /** Listen address. @default '127.0.0.1' (a non-loopback address must be named explicitly). */
    localHost: host('localHost').default(DEFAULTS.forward.localHost),
    /** Listen port; 0 picks a free one (read it from the handle). @default 0 */
    localPort: port.default(DEFAULTS.forward.port),
    /** Target host, resolved by the server. @default 'localhost' when `remotePort` is given */
    remoteHost: host('remoteHost').optional(),
    /** Target port on `remoteHost`. */
    remotePort: targetPort.optional(),
    /** Target Unix socket on the server (instead of `remoteHost`/`remotePort`). */
    remotePath: socketPath('remotePath').optional(),
  })
  .superRefine((o, ctx) => {
    if (o.remotePath !== undefined && (o.remotePort !== undefined || o.remoteHost !== undefined)) {
      ctx.addIssue({ code: 'custom', path: ['remotePath'], message: 'give either remotePath or remoteHost/remotePort, not both' });
    } else if (o.remotePath === undefined && o.remotePort === undefined) {
      ctx.addIssue({ code: 'custom', path: ['remotePort'], message: 'required: remotePort (an integer port from 1 to 65535) or remotePath (a Unix socket path)' });
    }
  });

/**
 * Options of a remote forward (ssh(1) `-R`, ssh_config `RemoteForward`): the server listens on
 * `remoteHost:remotePort` (`tcpip-forward`, RFC 4254 section 7.1) or on the Unix socket
 * `remotePath` (`streamlocal-forward@openssh.com`, OpenSSH PROTOCOL 2.4), and each connection
 * it accepts is carried back to `localHost:localPort` on this side.
 */
export const remoteForwardOptionsSchema = z
  .strictObject({
    /** Address the server binds. @default 'localhost' (sshd's `GatewayPorts` decides what else is allowed) */
    remoteHost: host('remoteHost').optional(),
    /** Port the server binds; 0 lets the server pick (read it from the handle). @default 0 */
    remotePort: port.optional(),
    /** Unix socket path the server listens on (instead of `remoteHost`/`remotePort`). */
    remotePath: socketPath('remotePath').optional(),
    /** Host connections are carried to, on this side. @default '127.0.0.1' */
    localHost: host('localHost').default(DEFAULTS.forward.localHost),
    /** Port connections are carried to, on this side. */
    localPort: targetPort,
    /**
     * How long the server may take to answer each `tcpip-forward` /
     * `streamlocal-forward@openssh.com` request, in ms; past it the request fails with
     * `ERR_SSH_FORWARD` (a server that never answers, e.g. tinysshd, cannot hang the caller).
     * @default the client's `connectTimeoutMs`
     */
    timeoutMs: timeoutMsSchema().optional(),
  })
  .superRefine((o, ctx) => {
    if (o.remotePath !== undefined && (o.remotePort !== undefined || o.remoteHost !== undefined)) {
      ctx.addIssue({ code: 'custom', path: ['remotePath'], message: 'give either remotePath or remoteHost/remotePort, not both' });
    }
  });

/** SOCKS5 username/password (RFC 1929) required from clients of a dynamic forward. */
const socksAuthSchema = z.strictObject({
  username: z.string({ error: 'expected a username of 1 to 255 bytes' }).min(1).refine((s) => Buffer.byteLength(s) <= 255, { error: 'expected a username of 1 to 255 bytes' }),
  password: z.string({ error: 'expected a password of 1 to 255 bytes' }).min(1).refine((s) => Buffer.byteLength(s) <= 255, { error: 'expected a password of 1 to 255 bytes' }),
});

/**
 * Options of a dynamic forward (ssh(1) `-D`, ssh_config `DynamicForward`): a SOCKS5 server
 * (RFC 1928) on `localHost:localPort` whose CONNECTs are carried through `direct-tcpip` channels.
 */
export const dynamicForwardOptionsSchema = z.strictObject({
  /** Listen address. @default '127.0.0.1' (a non-loopback address must be named explicitly). */
  localHost: host('localHost').default(DEFAULTS.forward.localHost),
  /** Listen port; 0 picks a free one. @default 0 */
  localPort: port.default(DEFAULTS.forward.port),
  /** Require RFC 1929 username/password from SOCKS clients. @default none (no authentication) */
  auth: socksAuthSchema.optional(),
});

/**
 * One declared forward of the client option `forwards: [...]`: the options of
 * {@link localForwardOptionsSchema}, {@link remoteForwardOptionsSchema} or
 * {@link dynamicForwardOptionsSchema} plus `type: 'local' | 'remote' | 'dynamic'`.
 */
export const forwardSpecSchema = z.discriminatedUnion(
  'type',
  [
    localForwardOptionsSchema.safeExtend({ type: z.literal('local') }),
    remoteForwardOptionsSchema.safeExtend({ type: z.literal('remote') }),
    dynamicForwardOptionsSchema.safeExtend({ type: z.literal('dynamic') }),
  ],
  { error: "expected a forward with type 'local', 'remote' or 'dynamic'" },
);

/** The client option `forwards`: a list of {@link forwardSpecSchema}. */
export const forwardSpecsSchema = z.array(forwardSpecSchema, { error: 'expected an array of forwards' });

/** What callers pass to `forwardLocal()` (defaults not yet applied). */
export type LocalForwardOptions = z.input<typeof localForwardOptionsSchema>;
/** What callers pass to `forwardRemote()`. */
export type RemoteForwardOptions = z.input<typeof remoteForwardOptionsSchema>;
/** What callers pass to `forwardDynamic()`. */
export type DynamicForwardOptions = z.input<typeof dynamicForwardOptionsSchema>;
/** One entry of the client option `forwards` (as given). */
export type ForwardSpecInput = z.input<typeof forwardSpecSchema>;
/** One entry of the client option `forwards` (validated, defaults applied). */
export type ForwardSpec = z.output<typeof forwardSpecSchema>;

/** Validated local forward options. */
export type ResolvedLocalForward = z.output<typeof localForwardOptionsSchema>;
/** Validated remote forward options. */
export type ResolvedRemoteForward = z.output<typeof remoteForwardOptionsSchema>;
/** Validated dynamic forward options. */
export type ResolvedDynamicForward = z.output<typeof dynamicForwardOptionsSchema>;

/** The forward kinds. */
export type ForwardKind = 'local' | 'remote' | 'dynamic';

interface ParsedByKind {
  local: ResolvedLocalForward;
  remote: ResolvedRemoteForward;
  dynamic: ResolvedDynamicForward;
}

const SCHEMAS = {
  local: localForwardOptionsSchema,
  remote: remoteForwardOptionsSchema,
  dynamic: dynamicForwardOptionsSchema,
} as const;

const ACCEPTED: Record<ForwardKind, string> = {
  local: 'localHost, localPort, remoteHost, remotePort, remotePath',
  remote: 'remoteHost, remotePort, remotePath, localHost, localPort, timeoutMs',
  dynamic: 'localHost, localPort, auth',
};

/**
 * Validates the options of one forward kind and applies the defaults.
 *
 * @param kind - `'local'`, `'remote'` or `'dynamic'`.
 * @param input - the caller's options object.
 * @returns the validated options with defaults applied.
 * @throws {SshInvalidArgError} `ERR_SSH_INVALID_ARG` naming the bad field (`field`) and the
 *   accepted form, e.g. for a negative, non-integer or > 65535 port, an unknown key, or both
 *   `remotePath` and `remotePort`. The ZodError is the `cause`.
 */
export function parseForwardOptions<K extends ForwardKind>(kind: K, input: unknown): ParsedByKind[K] {
  const parsed = SCHEMAS[kind].safeParse(input);
  if (!parsed.success) throw zodToError(parsed.error, `${kind} forward options`, undefined, ACCEPTED[kind].split(', '), input);
  return parsed.data;
}

/**
 * Validates the client option `forwards` (a list of declared forwards).
 *
 * @param input - the caller's `forwards` array.
 * @returns the validated specs with defaults applied.
 * @throws {SshConfigError} `ERR_SSH_CONFIG` naming the bad entry and field, e.g. `forwards.0.localPort`.
 */
export function parseForwardSpecs(input: unknown): ForwardSpec[] {
  const parsed = z.object({ forwards: forwardSpecsSchema }).safeParse({ forwards: input });
  if (!parsed.success) throw zodToConfigError(parsed.error, 'forwards option');
  return parsed.data.forwards;
}
