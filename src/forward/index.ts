/**
 * Port forwarding: local (`-L`), remote (`-R`) and dynamic (`-D`, SOCKS5) forwards that
 * survive reconnects. The client facade composes {@link ForwardManager}.
 *
 * @module forward
 */
export { ForwardManager, type ForwardManagerOptions, type ApplyDeclaredOptions } from './manager.js';
export { LocalForward } from './local.js';
export { RemoteForward, type RemoteForwardState } from './remote.js';
export { DynamicForward } from './dynamic.js';
export type { ForwardEvent, ForwardHandle } from './handles.js';
export type { ForwardStats, RemoteRetryPolicy } from './types.js';
export {
  FORWARD_DEFAULTS,
  forwardSpecSchema,
  forwardSpecsSchema,
  localForwardOptionsSchema,
  remoteForwardOptionsSchema,
  dynamicForwardOptionsSchema,
  parseForwardOptions,
  parseForwardSpecs,
  type ForwardKind,
  type ForwardSpec,
  type ForwardSpecInput,
  type LocalForwardOptions,
  type RemoteForwardOptions,
  type DynamicForwardOptions,
  type ResolvedLocalForward,
  type ResolvedRemoteForward,
  type ResolvedDynamicForward,
} from './options.js';
