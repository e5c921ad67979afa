// @signald/client: the TypeScript SDK of signald. This entry point needs
// nothing but the browser's WebSocket; under Node, package.json's "node"
// condition loads node.js instead, which brings the ws package.

export {
  SignalingClient,
  setDefaultWebSocket,
  type ClientOptions,
  type ConnectionChange,
  type ConnectionListener,
  type ConnectionState,
  type LoginOptions,
  type ReconnectOptions,
  type WebSocketConstructor,
  type WebSocketLike,
} from "./client.js";
export { ClientCode, ServerCode, SignalingError, describe, isUserSigCode } from "./errors.js";
export { MemoryStore, WebStorageStore, defaultStore, type EventIDStore } from "./store.js";
export type * from "./types.js";

/** The protocol version this SDK speaks (api/README.md). */
export const PROTOCOL_VERSION = 1;
