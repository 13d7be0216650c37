/**
 * The only place that touches ssh2's private fields: typed shapes checked at first connect, the
 * keep-alive probe, the DH group-exchange bounds check, the re-key strict-kex adjustment, the
 * UNIMPLEMENTED answer, and the SFTP raw send, window and inbound hooks (checked when an SFTP
 * session opens).
 * Internal: not exported from the package.
 *
 * @module
 */
export { adaptSsh2Client, ssh2Adapter, mpintBits, type Ssh2Adapter } from './adapter.js';
export { sendKeepaliveProbe } from './probe.js';
export { checkSsh2Internals, internalsChanged } from './shapes.js';
export { checkSftpInternals, readRequestTable, sftpChannel, type ReadRequestTable, type SftpChannel, type WaitingRead } from './sftp.js';
