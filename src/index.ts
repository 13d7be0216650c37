/**
 * ssh-tether: a self-healing SSH client library for Node.js, on ssh2.
 *
 * @packageDocumentation
 */
export { SshClient, type ClientEvents, type ClientWarning, type ClientHealth, type ForwardHealth } from './client.js';
export {
  LocalForward,
  RemoteForward,
  DynamicForward,
  FORWARD_DEFAULTS,
  forwardSpecSchema,
  localForwardOptionsSchema,
  remoteForwardOptionsSchema,
  dynamicForwardOptionsSchema,
  type ForwardEvent,
  type ForwardHandle,
  type ForwardStats,
  type RemoteForwardState,
  type RemoteRetryPolicy,
  type ForwardSpec,
  type ForwardSpecInput,
  type LocalForwardOptions,
  type RemoteForwardOptions,
  type DynamicForwardOptions,
} from './forward/index.js';
export {
  SshError,
  SshConfigError,
  SshInvalidArgError,
  SshHostKeyError,
  SshAuthError,
  SshExecError,
  SshChannelOpenError,
  ChannelOpenFailure,
  ERROR_CODES,
  TRANSIENT_NETWORK_CODES,
  isRetryable,
  isConnectionLost,
  type SshErrorCode,
  type SshErrorCodeInfo,
  type SshErrorOptions,
  type SshAuthFailureReason,
  type KnownHostKeyLocation,
  type ExecResultLike,
} from './errors.js';
export { DEFAULTS, type DefaultAlgorithms, type ForwardDefaults, type SshClientOptions, type PassphraseCallback, type KeyboardInteractiveCallback } from './options.js';
export type { HostKeyInfo, HostKeyVerifier } from './options.js';
export { resolveConfig, type EffectiveConfig } from './settings.js';
export type { SshConfigWarning } from './config/ssh-config.js';
export type { ConnectionState } from './connection/state.js';
export type { ConnectionEvents, RttSummary } from './connection/connection.js';
export { DIAGNOSTICS_CHANNELS } from './internal/diagnostics.js';
export type { Logger } from './internal/logger.js';
export { Secret } from './internal/secret.js';
export type { ConnectOptions, LinkWaitOptions } from './connection/link.js';
export type { ExecOptions, PtyOptions, ShellOptions, SpawnOptions, TerminalModeName, TerminalModes } from './exec/exec.js';
export { TERMINAL_MODE_NAMES } from './exec/exec.js';
export { RemoteProcess, type ExecResult } from './exec/process.js';
export { quoteArg, quoteArgv, type KillMode } from './exec/quote.js';
export type { NewHostKeyInfo } from './known-hosts/index.js';
export {
  SftpClient,
  SshSftpError,
  SftpStatus,
  type SftpStatusName,
  type SftpErrorReason,
  type SftpOperationOptions,
  type ListOptions,
  type PreserveOptions,
  type SftpWarning,
  type SftpEvents,
  type MkdirOptions,
  type RmOptions,
  type RenameOptions,
  type ReadFileOptions,
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
  type RemotePath,
  type SftpEntry,
  type SftpEntryType,
  type SftpStats,
  type TransferProgress,
} from './sftp/index.js';
export {
  diagnose,
  DIAGNOSE_STEPS,
  DIAGNOSE_EXIT_CODES,
  type DiagnoseOptions,
  type DiagnoseReport,
  type DiagnoseStep,
  type DiagnoseStepName,
} from './doctor/index.js';
export {
  SshGroup,
  type GroupHost,
  type SshGroupOptions,
  type GroupRunOptions,
  type GroupResult,
  type GroupTaskContext,
  type GroupEvents,
  type GroupHostHealth,
} from './group.js';
export {
  JobManager,
  RemoteJob,
  type JobStartOptions,
  type JobState,
  type JobStatus,
  type JobWaitOptions,
  type JobOutputOptions,
  type JobOutputChunk,
} from './jobs/jobs.js';
export type { FollowOptions, FollowLine } from './jobs/follow.js';
