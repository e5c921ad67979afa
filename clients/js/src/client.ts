// SignalingClient: one user's session with signald over one WebSocket at a
// time, kept alive across drops.
//
// Life of a session:
//
//	login()  → connecting → connected ──(socket lost)──→ reconnecting ─┐
//	                             ↑                                      │
//	                             └──── login with lastEventID ←─────────┘
//	logout(), or a re-login refused for its userSig → disconnected
//
// Every request is one frame {id, op, ...params} answered by exactly one
// reply with the same id; events carry no id. Events with an eventID are
// handed to listeners at most once (a set of the IDs seen) and the newest
// is written to the EventIDStore, so that the next login, after a drop or a
// page reload, resumes from it (api/README.md §11).

import { ClientCode, SignalingError, isUserSigCode } from "./errors.js";
import { type EventIDStore, defaultStore } from "./store.js";
import type {
  InviteOptions,
  LoginResult,
  OfflinePushConfig,
  PingResult,
  SignalingEvent,
  SignalingInfo,
  SignalingListener,
} from "./types.js";

/** The connection's state, as a connection listener is told. */
export type ConnectionState = "disconnected" | "connecting" | "connected" | "reconnecting";

/** What a connection listener is told at each state change. */
export interface ConnectionChange {
  state: ConnectionState;
  /**
   * Why: "login" (login() called), "loggedIn", "closed" (the socket was
   * lost), "offline" (the browser went offline), "reconnected",
   * "loginFailed" (a re-login was refused: see error), "logout",
   * "connectFailed" (login() could not connect).
   */
  reason: "login" | "loggedIn" | "closed" | "offline" | "reconnected" | "loginFailed" | "logout" | "connectFailed";
  /** The WebSocket close code when the socket was lost (1006: dropped without a close frame). */
  closeCode?: number;
  closeReason?: string;
  /** reconnecting: the attempt about to be made (1 for the first) and the wait before it, in ms. */
  attempt?: number;
  retryIn?: number;
  /**
   * connected after a reconnect: true when every event missed meanwhile
   * follows; false when they cannot be replayed (the absence outlasted what
   * the server keeps, or nothing was kept for the user before, so there was
   * no eventID to resume from) and only invitations still ringing follow:
   * refresh what you show with getSignalingInfo. After login(): present
   * when it resumed from a stored eventID.
   */
  recovered?: boolean;
  error?: SignalingError;
}

/** Callbacks about the connection (the V2TIMSDKListener part that applies). */
export interface ConnectionListener {
  onConnectionStateChanged?(change: ConnectionChange): void;
  /** A re-login was refused because the userSig expired: log in again with a fresh one. */
  onUserSigExpired?(): void;
}

/** The part of the WebSocket API the client uses (the browser's and ws's). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Backoff of reconnect attempts. */
export interface ReconnectOptions {
  /** The first wait after a drop, ms. Default 500. */
  initialDelay?: number;
  /** The longest wait, ms. Default 30000. */
  maxDelay?: number;
  /** Each failed attempt multiplies the wait by this. Default 2. */
  factor?: number;
  /** 0..1: the wait is drawn from [wait × (1 − jitter), wait]. Default 0.5. */
  jitter?: number;
  /** After a close with 1008 (policy: too slow, rate limit), wait at least this, ms. Default 10000. */
  policyDelay?: number;
}

export interface ClientOptions {
  /** The WebSocket URL, e.g. wss://signald.example.com/v1/ws. */
  url: string;
  /** The WebSocket implementation. Default: the browser's (the Node entry point uses the ws package). */
  WebSocket?: WebSocketConstructor;
  /** Where the last processed eventID is kept. Default: localStorage in browsers, memory elsewhere. */
  store?: EventIDStore;
  /** How long a request waits for its reply, from the call (queueing included), ms. Default 10000. */
  requestTimeout?: number;
  /** Reconnect backoff, or false to never reconnect by itself. */
  reconnect?: ReconnectOptions | false;
  /** An application-level ping this often while connected, ms; a ping unanswered within requestTimeout drops the socket. 0: none. Default 25000. */
  heartbeatInterval?: number;
  /** Requests made while reconnecting wait for the session (true, the default) or fail at once with RECONNECTING (false). */
  queueWhileReconnecting?: boolean;
  /** Most requests waiting for a reconnect; beyond, QUEUE_FULL. Default 100. */
  maxQueuedRequests?: number;
  /** Called before each re-login for a fresh userSig (e.g. from your backend). Default: reuse login()'s. */
  refreshUserSig?: (userID: string) => string | Promise<string>;
  /** Sees every frame sent and received (a debug log); must not change it. */
  onFrame?: (direction: "in" | "out", frame: Record<string, unknown>) => void;
}

export interface LoginOptions {
  /** The app installation's stable ID (api/README.md §13); also keys the stored eventID. */
  deviceID?: string;
  /** Resume from the stored eventID (default true). */
  resume?: boolean;
}

interface Pending {
  op: string;
  params: Record<string, unknown>;
  resolve(data: unknown): void;
  reject(err: SignalingError): void;
  timer?: ReturnType<typeof setTimeout>;
  id?: number;
}

interface Session {
  userID: string;
  userSig: string;
  deviceID?: string;
  storeKey: string;
}

let defaultWebSocket: WebSocketConstructor | undefined = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;

/** Sets the WebSocket used when ClientOptions.WebSocket is not given (the Node entry point sets ws's). */
export function setDefaultWebSocket(ctor: WebSocketConstructor): void {
  defaultWebSocket = ctor;
}

const maxSeen = 1000;
/** login() opens a new socket this many times more when one drops before the reply. */
const maxLoginTries = 5;
const OPEN = 1;

/** One user's signaling session, named and shaped after V2TIMSignalingManager. */
export class SignalingClient {
  private readonly url: string;
  private readonly WS: WebSocketConstructor;
  private readonly store: EventIDStore;
  private readonly requestTimeout: number;
  private readonly backoff: Required<ReconnectOptions> | false;
  private readonly heartbeatInterval: number;
  private readonly queueWhileReconnecting: boolean;
  private readonly maxQueued: number;
  private readonly refreshUserSig?: (userID: string) => string | Promise<string>;
  private readonly onFrame?: (direction: "in" | "out", frame: Record<string, unknown>) => void;

  private state: ConnectionState = "disconnected";
  private session: Session | null = null;
  private ws: WebSocketLike | null = null;
  /** Bumped whenever a socket is given up, so that its late callbacks are ignored. */
  private generation = 0;
  private nextID = 1;
  private readonly inflight = new Map<number, Pending>();
  private queue: Pending[] = [];
  private lastEventID = "";
  private readonly seen = new Set<string>();
  private attempt = 0;
  /** Sockets of login() that dropped before its reply, tried again. */
  private loginTries = 0;
  private reconnectTimer?: ReturnType<typeof setTimeout>;
  private heartbeatTimer?: ReturnType<typeof setInterval>;
  private loginWaiter: { resolve(r: LoginResult): void; reject(e: SignalingError): void } | null = null;
  private readonly signalingListeners: SignalingListener[] = [];
  private readonly connectionListeners: ConnectionListener[] = [];
  private readonly onOffline = () => this.dropSocket(1006, "browser offline", "offline");
  private readonly onOnline = () => this.reconnectNow();

  constructor(options: ClientOptions) {
    if (!options || typeof options.url !== "string" || !/^wss?:\/\//.test(options.url)) {
      throw new TypeError("SignalingClient: options.url must be a ws:// or wss:// URL");
    }
    const WS = options.WebSocket ?? defaultWebSocket;
    if (!WS) {
      throw new TypeError("SignalingClient: no WebSocket here; pass options.WebSocket, or import the Node entry point (which uses ws)");
    }
    this.url = options.url;
    this.WS = WS;
    this.store = options.store ?? defaultStore();
    this.requestTimeout = options.requestTimeout ?? 10_000;
    this.backoff =
      options.reconnect === false
        ? false
        : {
            initialDelay: 500,
            maxDelay: 30_000,
            factor: 2,
            jitter: 0.5,
            policyDelay: 10_000,
            ...options.reconnect,
          };
    this.heartbeatInterval = options.heartbeatInterval ?? 25_000;
    this.queueWhileReconnecting = options.queueWhileReconnecting ?? true;
    this.maxQueued = options.maxQueuedRequests ?? 100;
    this.refreshUserSig = options.refreshUserSig;
    this.onFrame = options.onFrame;
  }

  // ---- session ----

  /**
   * Opens the connection and logs in. Resolves with the login reply's data
   * once logged in; rejects with the server's code (700xx for the userSig),
   * CONNECT_FAILED, or ALREADY_LOGGED_IN. The session then reconnects by
   * itself until logout().
   */
  login(userID: string, userSig: string, options: LoginOptions = {}): Promise<LoginResult> {
    if (this.session) {
      return Promise.reject(new SignalingError(ClientCode.ALREADY_LOGGED_IN, undefined, "login"));
    }
    const storeKey = `signald:lastEventID:${encodeURIComponent(userID)}:${encodeURIComponent(options.deviceID ?? "")}`;
    this.session = { userID, userSig, deviceID: options.deviceID, storeKey };
    this.seen.clear();
    this.attempt = 0;
    this.loginTries = 0;
    const session = this.session;
    return new Promise<LoginResult>((resolve, reject) => {
      this.loginWaiter = { resolve, reject };
      this.setState({ state: "connecting", reason: "login" });
      void (async () => {
        this.lastEventID = "";
        if (options.resume !== false) {
          try {
            this.lastEventID = (await this.store.get(storeKey)) ?? "";
          } catch {
            this.lastEventID = "";
          }
        }
        if (this.session !== session) return; // logged out meanwhile
        this.watchNetwork(true);
        this.connect();
      })();
    });
  }

  /** Ends the session: closes the socket and fails every waiting request with LOGGED_OUT. */
  async logout(): Promise<void> {
    if (!this.session) return;
    this.session = null;
    this.watchNetwork(false);
    clearTimeout(this.reconnectTimer);
    this.stopHeartbeat();
    const ws = this.ws;
    this.ws = null;
    this.generation++;
    ws?.close(1000, "logout");
    this.failAll(ClientCode.LOGGED_OUT);
    this.settleLogin(new SignalingError(ClientCode.LOGGED_OUT, undefined, "login"));
    this.setState({ state: "disconnected", reason: "logout" });
  }

  /** The logged-in user, or "" (V2TIMManager.getLoginUser). */
  getLoginUser(): string {
    return this.session?.userID ?? "";
  }

  getConnectionState(): ConnectionState {
    return this.state;
  }

  /** The newest eventID processed (what the next login resumes from). */
  getLastEventID(): string {
    return this.lastEventID;
  }

  // ---- listeners ----

  addSignalingListener(listener: SignalingListener): void {
    if (!this.signalingListeners.includes(listener)) this.signalingListeners.push(listener);
  }

  removeSignalingListener(listener: SignalingListener): void {
    const i = this.signalingListeners.indexOf(listener);
    if (i >= 0) this.signalingListeners.splice(i, 1);
  }

  addConnectionListener(listener: ConnectionListener): void {
    if (!this.connectionListeners.includes(listener)) this.connectionListeners.push(listener);
  }

  removeConnectionListener(listener: ConnectionListener): void {
    const i = this.connectionListeners.indexOf(listener);
    if (i >= 0) this.connectionListeners.splice(i, 1);
  }

  // ---- operations (api/README.md §3) ----

  /** Invites one user; resolves to the new inviteID. */
  invite(invitee: string, data: string, options: InviteOptions = {}): Promise<string> {
    return this.request<string>("invite", { invitee, data, ...inviteParams(options) });
  }

  /** Invites members of a group; resolves to the new inviteID. */
  inviteInGroup(groupID: string, inviteeList: string[], data: string, options: InviteOptions = {}): Promise<string> {
    return this.request<string>("inviteInGroup", { groupID, inviteeList, data, ...inviteParams(options) });
  }

  /** The inviter withdraws an active invitation. */
  async cancel(inviteID: string, data?: string): Promise<void> {
    await this.request("cancel", { inviteID, data });
  }

  /** A pending invitee accepts. */
  async accept(inviteID: string, data?: string): Promise<void> {
    await this.request("accept", { inviteID, data });
  }

  /** A pending invitee rejects. */
  async reject(inviteID: string, data?: string): Promise<void> {
    await this.request("reject", { inviteID, data });
  }

  /** The inviter replaces the data of an active invitation. */
  async modifyInvitation(inviteID: string, data: string): Promise<void> {
    await this.request("modifyInvitation", { inviteID, data });
  }

  /** Reads an invitation (its inviter or an invitee only). */
  getSignalingInfo(inviteID: string): Promise<SignalingInfo> {
    return this.request<SignalingInfo>("getSignalingInfo", { inviteID });
  }

  /** Registers where this (or another) device of the user is pushed. */
  async setOfflinePushConfig(config: OfflinePushConfig): Promise<void> {
    await this.request("setOfflinePushConfig", { ...config });
  }

  /** The app went to the background: this device counts as absent for pushes. */
  async doBackground(): Promise<void> {
    await this.request("doBackground", {});
  }

  /** The app came back to the foreground. */
  async doForeground(): Promise<void> {
    await this.request("doForeground", {});
  }

  /** An application-level ping; resolves with the server's clock. */
  ping(): Promise<PingResult> {
    return this.request<PingResult>("ping", {});
  }

  // ---- requests ----

  private request<T>(op: string, params: Record<string, unknown>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const p: Pending = { op, params, resolve: resolve as (d: unknown) => void, reject };
      if (this.state === "connected") {
        this.armTimeout(p);
        this.send(p);
        return;
      }
      const waiting = this.session && (this.state === "reconnecting" || this.state === "connecting");
      if (!waiting) {
        reject(new SignalingError(ClientCode.NOT_LOGGED_IN, undefined, op));
      } else if (this.state === "reconnecting" && !this.queueWhileReconnecting) {
        reject(new SignalingError(ClientCode.RECONNECTING, undefined, op));
      } else if (this.queue.length >= this.maxQueued) {
        reject(new SignalingError(ClientCode.QUEUE_FULL, undefined, op));
      } else {
        this.armTimeout(p);
        this.queue.push(p);
      }
    });
  }

  private armTimeout(p: Pending): void {
    p.timer = setTimeout(() => {
      if (p.id !== undefined) this.inflight.delete(p.id);
      const i = this.queue.indexOf(p);
      if (i >= 0) this.queue.splice(i, 1);
      p.reject(new SignalingError(ClientCode.REQUEST_TIMEOUT, undefined, p.op));
      if (p.op === "ping" && p.id !== undefined) {
        // A heartbeat unanswered: the socket is dead even if it does not know.
        this.dropSocket(1006, "no reply to ping", "closed");
      }
    }, this.requestTimeout);
  }

  private send(p: Pending): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN) {
      this.settle(p, new SignalingError(ClientCode.CONNECTION_LOST, undefined, p.op));
      return;
    }
    p.id = this.nextID++;
    const frame: Record<string, unknown> = { id: p.id, op: p.op };
    for (const [k, v] of Object.entries(p.params)) {
      if (v !== undefined) frame[k] = v;
    }
    this.inflight.set(p.id, p);
    this.onFrame?.("out", frame);
    try {
      ws.send(JSON.stringify(frame));
    } catch {
      this.inflight.delete(p.id);
      this.settle(p, new SignalingError(ClientCode.CONNECTION_LOST, undefined, p.op));
    }
  }

  private settle(p: Pending, err: SignalingError | null, data?: unknown): void {
    clearTimeout(p.timer);
    if (err) p.reject(err);
    else p.resolve(data);
  }

  private failAll(code: number): void {
    const all = [...this.inflight.values(), ...this.queue];
    this.inflight.clear();
    this.queue = [];
    for (const p of all) this.settle(p, new SignalingError(code, undefined, p.op));
  }

  // ---- the socket ----

  private connect(): void {
    const gen = ++this.generation;
    let ws: WebSocketLike;
    try {
      ws = new this.WS(this.url);
    } catch {
      this.socketGone(1006, "could not open the WebSocket", false);
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      if (gen !== this.generation) return;
      opened = true;
      void this.sendLogin(gen);
    };
    ws.onmessage = (ev) => {
      if (gen === this.generation) this.receive(ev.data);
    };
    ws.onclose = (ev) => {
      if (gen === this.generation) this.socketGone(ev.code, ev.reason, opened);
    };
    ws.onerror = () => {
      // A close event follows; it decides.
    };
  }

  private async sendLogin(gen: number): Promise<void> {
    const s = this.session;
    if (!s) return;
    let userSig = s.userSig;
    const reconnecting = this.state === "reconnecting";
    if (reconnecting && this.refreshUserSig) {
      try {
        userSig = await this.refreshUserSig(s.userID);
        s.userSig = userSig;
      } catch {
        // keep the old one; the server says whether it still works
      }
      if (gen !== this.generation) return;
    }
    const params: Record<string, unknown> = { userID: s.userID, userSig, deviceID: s.deviceID };
    const resumed = this.lastEventID !== "";
    if (resumed) params.lastEventID = this.lastEventID;
    const p: Pending = {
      op: "login",
      params,
      resolve: (data) => this.loggedIn(data as LoginResult, resumed, reconnecting),
      reject: (err) => this.loginRefused(err, gen),
    };
    this.armTimeout(p);
    this.send(p);
  }

  private loggedIn(r: LoginResult, resumed: boolean, reconnecting: boolean): void {
    // Without a full replay the pending invitations follow instead, older
    // than the newest kept event: the anchor is the newest one now.
    if ((!resumed || r.recovered !== true) && r.lastEventID > this.lastEventID) {
      this.advance(r.lastEventID);
    }
    this.setState({
      state: "connected",
      reason: reconnecting ? "reconnected" : "loggedIn",
      // A reconnect without an eventID to resume from (nothing was kept
      // for the user yet) recovers nothing either.
      recovered: resumed ? r.recovered === true : reconnecting ? false : undefined,
    });
    this.attempt = 0;
    this.startHeartbeat();
    const queued = this.queue;
    this.queue = [];
    for (const p of queued) this.send(p);
    this.settleLogin(null, r);
  }

  private loginRefused(err: SignalingError, gen: number): void {
    if (gen !== this.generation) return;
    if (err.code === ClientCode.REQUEST_TIMEOUT) {
      if (this.loginWaiter) {
        this.giveUp(err, "connectFailed");
      } else {
        this.dropSocket(1006, "login unanswered", "closed"); // and try again later
      }
      return;
    }
    if (err.code === ClientCode.CONNECTION_LOST) {
      this.dropSocket(1006, "socket lost during login", "closed"); // socketGone decides
      return;
    }
    if (this.loginWaiter || isUserSigCode(err.code) || err.code === 6017) {
      // Refused for good: a new userSig (or a fixed request) is needed.
      if (err.code === 70001) {
        for (const l of [...this.connectionListeners]) safeCall(() => l.onUserSigExpired?.());
      }
      this.giveUp(err, this.loginWaiter ? "connectFailed" : "loginFailed");
      return;
    }
    // 60018, 90994: the server is busy or its store away; try again later.
    this.dropSocket(1006, err.desc, "closed");
  }

  /** Ends the session after a login that cannot succeed. */
  private giveUp(err: SignalingError, reason: ConnectionChange["reason"]): void {
    const ws = this.ws;
    this.ws = null;
    this.generation++;
    ws?.close(1000, "login refused");
    this.session = null;
    this.watchNetwork(false);
    clearTimeout(this.reconnectTimer);
    this.stopHeartbeat();
    this.failAll(ClientCode.NOT_LOGGED_IN);
    this.settleLogin(err);
    this.setState({ state: "disconnected", reason, error: err });
  }

  private settleLogin(err: SignalingError | null, r?: LoginResult): void {
    const w = this.loginWaiter;
    this.loginWaiter = null;
    if (!w) return;
    if (err) w.reject(err);
    else w.resolve(r as LoginResult);
  }

  /** Gives up the current socket as if it had closed with code. */
  private dropSocket(code: number, reason: string, why: "closed" | "offline"): void {
    const ws = this.ws;
    if (!ws) return; // no socket, or a reconnect already scheduled
    this.ws = null;
    this.generation++;
    try {
      ws?.close(4000, reason.slice(0, 100));
    } catch {
      // already closing
    }
    this.socketGone(code, reason, true, why);
  }

  private socketGone(code: number, reason: string, opened: boolean, why: "closed" | "offline" = "closed"): void {
    this.ws = null;
    this.generation++;
    this.stopHeartbeat();
    const inflight = [...this.inflight.values()];
    this.inflight.clear();
    for (const p of inflight) this.settle(p, new SignalingError(ClientCode.CONNECTION_LOST, undefined, p.op));
    if (!this.session) return;
    if (this.loginWaiter) {
      // login() has not succeeded yet: a socket that drops is tried again
      // a few times, then login() fails rather than retrying forever.
      if (this.loginTries < maxLoginTries) {
        this.loginTries++;
        clearTimeout(this.reconnectTimer);
        this.reconnectTimer = setTimeout(() => {
          if (this.session && this.loginWaiter) this.connect();
        }, 100 * this.loginTries * (1 + Math.random()));
        return;
      }
      this.giveUp(
        new SignalingError(opened ? ClientCode.CONNECTION_LOST : ClientCode.CONNECT_FAILED, undefined, "login"),
        "connectFailed",
      );
      return;
    }
    if (!this.backoff) {
      this.giveUp(new SignalingError(ClientCode.CONNECTION_LOST, undefined, "login"), "loginFailed");
      return;
    }
    this.scheduleReconnect(code, reason, why);
  }

  private scheduleReconnect(code: number, reason: string, why: "closed" | "offline"): void {
    const b = this.backoff;
    if (!b) return;
    clearTimeout(this.reconnectTimer);
    const wait = Math.min(b.maxDelay, b.initialDelay * b.factor ** this.attempt);
    let delay = wait * (1 - b.jitter * Math.random());
    if (code === 1012) {
      // The instance is restarting: come back now (a little spread, so
      // that all its clients do not arrive at once) and resume.
      delay = Math.random() * b.initialDelay;
    } else if (code === 1008) {
      // Policy: too slow, or past the rate limit. Never hammer.
      delay = Math.max(delay, b.policyDelay * (1 - (b.jitter / 2) * Math.random()));
    }
    this.attempt++;
    this.setState({
      state: "reconnecting",
      reason: why,
      closeCode: code,
      closeReason: reason,
      attempt: this.attempt,
      retryIn: Math.round(delay),
    });
    this.reconnectTimer = setTimeout(() => {
      if (this.session && this.state === "reconnecting") this.connect();
    }, delay);
  }

  /** Reconnects at once (the browser came back online). */
  private reconnectNow(): void {
    if (this.state !== "reconnecting" || !this.session) return;
    clearTimeout(this.reconnectTimer);
    this.attempt = 0;
    if (!this.ws) this.connect();
  }

  private watchNetwork(on: boolean): void {
    const g = globalThis as { addEventListener?: (t: string, f: () => void) => void; removeEventListener?: (t: string, f: () => void) => void };
    if (typeof g.addEventListener !== "function" || typeof g.removeEventListener !== "function") return;
    g.removeEventListener("offline", this.onOffline);
    g.removeEventListener("online", this.onOnline);
    if (on) {
      g.addEventListener("offline", this.onOffline);
      g.addEventListener("online", this.onOnline);
    }
  }

  private startHeartbeat(): void {
    this.stopHeartbeat();
    if (this.heartbeatInterval > 0) {
      this.heartbeatTimer = setInterval(() => {
        this.ping().catch(() => {
          // a timeout drops the socket (armTimeout); other errors are the socket's own
        });
      }, this.heartbeatInterval);
    }
  }

  private stopHeartbeat(): void {
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
  }

  // ---- frames in ----

  private receive(raw: unknown): void {
    if (typeof raw !== "string") return; // the protocol has no binary frames
    let frame: Record<string, unknown>;
    try {
      frame = JSON.parse(raw);
    } catch {
      return;
    }
    if (frame === null || typeof frame !== "object") return;
    this.onFrame?.("in", frame);
    if (typeof frame.event === "string") {
      this.dispatch(frame as unknown as SignalingEvent);
      return;
    }
    const id = frame.id;
    if (typeof id !== "number") return;
    const p = this.inflight.get(id);
    if (!p) return; // timed out already, or id 0
    this.inflight.delete(id);
    const code = typeof frame.code === "number" ? frame.code : 90994;
    if (code === 0) this.settle(p, null, frame.data);
    else this.settle(p, new SignalingError(code, typeof frame.desc === "string" ? frame.desc : undefined, p.op));
  }

  private dispatch(ev: SignalingEvent): void {
    const id = ev.eventID;
    // A duplicate around a reconnect has the eventID of the original. An
    // invitation still pending is rung again by a login that could not
    // resume, sometimes without its first eventID: it rang once already.
    const keys = id ? [id] : [];
    if (ev.event === "onReceiveNewInvitation") keys.push("ring:" + ev.inviteID);
    if (keys.some((k) => this.seen.has(k))) return;
    for (const k of keys) this.seen.add(k);
    while (this.seen.size > maxSeen) {
      const oldest = this.seen.values().next().value;
      if (oldest === undefined) break;
      this.seen.delete(oldest);
    }
    for (const l of [...this.signalingListeners]) {
      safeCall(() => {
        switch (ev.event) {
          case "onReceiveNewInvitation":
            l.onReceiveNewInvitation?.(ev.inviteID, ev.inviter, ev.groupID, ev.inviteeList, ev.data, ev);
            break;
          case "onInviteeAccepted":
            l.onInviteeAccepted?.(ev.inviteID, ev.invitee, ev.data, ev);
            break;
          case "onInviteeRejected":
            l.onInviteeRejected?.(ev.inviteID, ev.invitee, ev.data, ev);
            break;
          case "onInvitationCancelled":
            l.onInvitationCancelled?.(ev.inviteID, ev.inviter, ev.data, ev);
            break;
          case "onInvitationTimeout":
            l.onInvitationTimeout?.(ev.inviteID, ev.inviteeList, ev);
            break;
          case "onInvitationModified":
            l.onInvitationModified?.(ev.inviteID, ev.data, ev);
            break;
        }
      });
    }
    if (id && id > this.lastEventID) this.advance(id);
  }

  private advance(eventID: string): void {
    this.lastEventID = eventID;
    const s = this.session;
    if (!s) return;
    try {
      const r = this.store.set(s.storeKey, eventID);
      if (r && typeof (r as Promise<void>).catch === "function") (r as Promise<void>).catch(() => {});
    } catch {
      // a store that fails costs a replay, not the session
    }
  }

  private setState(change: ConnectionChange): void {
    this.state = change.state;
    for (const l of [...this.connectionListeners]) safeCall(() => l.onConnectionStateChanged?.(change));
  }
}

function inviteParams(o: InviteOptions): Record<string, unknown> {
  return { timeout: o.timeout, onlineUserOnly: o.onlineUserOnly, offlinePushInfo: o.offlinePushInfo };
}

/** A listener that throws must not break the connection's loop. */
function safeCall(f: () => void): void {
  try {
    f();
  } catch (err) {
    console.error("signald: a listener threw", err);
  }
}
