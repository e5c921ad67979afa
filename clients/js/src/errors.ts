// Error codes: the server's (api/README.md §7) and the SDK's own, which are
// negative so that they never collide with a server code.

/** Codes the server answers with (api/README.md §7). */
export const ServerCode = {
  NOT_LOGGED_IN: 6014,
  INVALID_PARAMETERS: 6017,
  INVITATION_ENDED: 8010,
  NO_PERMISSION: 8011,
  TOO_MANY_PENDING: 8012,
  TOO_MANY_ACTIVE: 8013,
  TOO_MANY_INVITEES: 10005,
  NOT_GROUP_MEMBER: 10007,
  GROUP_NOT_FOUND: 10010,
  RATE_LIMITED: 60018,
  USERSIG_EXPIRED: 70001,
  USERSIG_EMPTY: 70002,
  USERSIG_INVALID: 70003,
  USERSIG_WRONG_USER: 70013,
  DATA_TOO_LARGE: 80002,
  INTERNAL: 90994,
} as const;

/** Codes the SDK raises itself, without a reply from the server. */
export const ClientCode = {
  /** No reply within requestTimeout. The request may or may not have taken effect. */
  REQUEST_TIMEOUT: -1001,
  /** The connection dropped after the request was sent and before its reply. It may or may not have taken effect. */
  CONNECTION_LOST: -1002,
  /** No session to send on: before login, after logout or a failed re-login, or while reconnecting with queueWhileReconnecting off. */
  NOT_LOGGED_IN: -1003,
  /** logout() ended the session while the request waited. */
  LOGGED_OUT: -1004,
  /** login() on a client that already has a session: logout() first. */
  ALREADY_LOGGED_IN: -1005,
  /** login() could not open the WebSocket (server down, wrong URL, origin refused). */
  CONNECT_FAILED: -1006,
  /** More requests wait for the reconnect than maxQueuedRequests. */
  QUEUE_FULL: -1007,
  /** A request made while reconnecting, with queueWhileReconnecting off: try again once connected. */
  RECONNECTING: -1008,
} as const;

const descs: Record<number, string> = {
  6014: "not logged in",
  6017: "invalid parameters",
  8010: "invitation unknown or already ended",
  8011: "no permission for this invitation",
  8012: "an invitee has too many pending invitations",
  8013: "too many active invitations",
  10005: "too many invitees",
  10007: "not a member of the group",
  10010: "group not found",
  60018: "rate limit exceeded",
  70001: "userSig expired",
  70002: "userSig empty",
  70003: "userSig invalid",
  70013: "userSig issued for another userID",
  80002: "data larger than 12 KiB",
  90994: "internal error; the request may or may not have taken effect",
  [-1001]: "no reply in time; the request may or may not have taken effect",
  [-1002]: "connection lost before the reply; the request may or may not have taken effect",
  [-1003]: "not logged in",
  [-1004]: "logged out",
  [-1005]: "already logged in; log out first",
  [-1006]: "could not connect to the server",
  [-1007]: "too many requests waiting for the reconnect",
  [-1008]: "reconnecting; try again once connected",
};

/** The one text of a code (the server's desc for its codes; 10007 adds the user on the wire). */
export function describe(code: number): string {
  return descs[code] ?? `error ${code}`;
}

/** Whether code says the userSig must be replaced before logging in again. */
export function isUserSigCode(code: number): boolean {
  return code === 70001 || code === 70002 || code === 70003 || code === 70013;
}

/**
 * The error every SDK promise rejects with. Branch on `code`; `desc` is the
 * server's text (one per code; 10007 names the user who is not a member) or
 * the SDK's own for negative codes.
 */
export class SignalingError extends Error {
  readonly code: number;
  readonly desc: string;
  /** The op that failed, e.g. "invite". */
  readonly op: string;

  constructor(code: number, desc: string | undefined, op: string) {
    const d = desc || describe(code);
    super(`${op}: ${d} (${code})`);
    this.name = "SignalingError";
    this.code = code;
    this.desc = d;
    this.op = op;
  }
}
