/**
 * SFTP feature: {@link SftpClient} and its types. Composed by the `SshClient` facade
 * (`client.sftp()`); usable on its own over any `LinkProvider`.
 *
 * @module sftp
 */
export {
  SftpClient,
  type SftpOptions,
  type SftpOperationOptions,
  type MkdirOptions,
  type RmOptions,
  type RenameOptions,
  type ReadFileOptions,
  type ListOptions,
  type PreserveOptions,
  type SftpWarning,
  type SftpEvents,
  type WriteFileOptions,
  type ReadStreamOptions,
  type WriteStreamOptions,
  type ResumeOptions,
  type TransferOptions,
  type TransferResult,
  type DirFilterEntry,
  type DirTransferOptions,
  type DirTransferSummary,
  type WalkOptions,
  type SftpWalkEntry,
  type SyncCompare,
  type RemoteCommand,
  type RemotePath,
  type SftpEntry,
  type SftpEntryType,
  type SftpStats,
  type TransferProgress,
} from './client.js';
export { SshSftpError, SftpStatus, sftpStatusName, type SftpStatusName, type SftpErrorReason } from './errors.js';
