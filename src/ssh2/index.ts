/**
 * The only place that touches ssh2's private fields: typed shapes checked at first connect, the
 * keep-alive probe, the DH group-exchange bounds check, the re-key strict-kex adjustment, the
 * UNIMPLEMENTED answer, the SFTP raw send, window and inbound hooks (checked when an SFTP
 * session opens), and the eager receive window of forward channels (window.ts, checked per channel).
 * Internal: not exported from the package.
 *
 * @module
 */
export { adaptSsh2Client, ssh2Adapter, mpintBits, type Ssh2Adapter } from './adapter.js';
export { sendKeepaliveProbe } from './probe.js';
export { checkSsh2Internals, internalsChanged } from './shapes.js';
export { checkChannelWindow, eagerWindow, type EagerWindow, type EagerWindowOptions } from './window.js';
export { parseHandshakeDebug, type HandshakeDebug } from './debug.js';
export { checkSftpInternals, readRequestTable, sftpChannel, type ReadRequestTable, type SftpChannel, type WaitingRead } from './sftp.js';
