// The Node entry point: the same SDK, with the ws package as its WebSocket
// (Node 20 has none of its own). The default EventIDStore is memory.

import WebSocket from "ws";
import { type WebSocketConstructor, setDefaultWebSocket } from "./client.js";

setDefaultWebSocket(WebSocket as unknown as WebSocketConstructor);

export * from "./index.js";
