/**
 * The only place that touches ssh2's private fields (besides the SFTP raw-send code in src/sftp/,
 * which has its own guard): typed shapes checked at first connect, the keep-alive probe, the DH
 * group-exchange bounds check, the re-key strict-kex adjustment and the UNIMPLEMENTED answer.
 * Internal: not exported from the package.
 *
 * @module
 */
export { adaptSsh2Client, ssh2Adapter, mpintBits, type Ssh2Adapter } from './adapter.js';
export { sendKeepaliveProbe } from './probe.js';
export { checkSsh2Internals, internalsChanged } from './shapes.js';
export { checkChannelWindow, eagerWindow, type EagerWindow, type EagerWindowOptions } from './window.js';
