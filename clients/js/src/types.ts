// Types of the signald protocol (api/asyncapi.yaml), as the SDK hands them
// to apps. test/types.test.mjs holds every interface here that mirrors a
// schema to that schema's fields and required-ness.

/** An invitee's state in an invitation. */
export type InviteeState = "pending" | "accepted" | "rejected" | "timeout" | "cancelled";

/** Hints for the offline push sent to invitees who are not connected (schema OfflinePushInfo). */
export interface OfflinePushInfo {
  title?: string;
  desc?: string;
  ext?: string;
  disablePush?: boolean;
}

/** Options of invite and inviteInGroup (the optional fields of schema InviteRequest). */
export interface InviteOptions {
  /** Seconds until pending invitees time out; default 30, 0 = no deadline. */
  timeout?: number;
  /** true: reach only invitees connected right now; nothing is kept, no push. */
  onlineUserOnly?: boolean;
  offlinePushInfo?: OfflinePushInfo;
}

/** The data of a successful login reply (schema LoginResult). */
export interface LoginResult {
  userID: string;
  /** The server clock, ms since the Unix epoch. */
  serverTime: number;
  /** The newest event kept for the user, "" if none. */
  lastEventID: string;
  /** Present when the login resumed: true when everything missed follows. */
  recovered?: boolean;
}

/** An invitation as getSignalingInfo returns it (schema Invitation). */
export interface SignalingInfo {
  inviteID: string;
  /** "" for a one-to-one invitation. */
  groupID: string;
  inviter: string;
  inviteeList: string[];
  data: string;
  /** Seconds, as given at creation; 0 = no deadline. */
  timeout: number;
  onlineUserOnly: boolean;
  /** ms since the epoch, server clock. */
  createdAt: number;
  /** When pending invitees time out, ms since the epoch; 0 without a timeout. */
  deadline: number;
  states: Record<string, InviteeState>;
}

/** The reply data of ping (schema PingResult). */
export interface PingResult {
  serverTime: number;
}

/** Push platforms of setOfflinePushConfig. */
export type PushPlatform = "apns-voip" | "apns" | "fcm" | "webhook";

/** Parameters of setOfflinePushConfig (schema SetOfflinePushConfigRequest). */
export interface OfflinePushConfig {
  platform: PushPlatform;
  /** The platform's device token; "" removes this platform's registration. */
  token: string;
  /** APNs only: a development-environment token. */
  sandbox?: boolean;
  /** Default: the deviceID given at login. */
  deviceID?: string;
}

/** schema OnReceiveNewInvitationEvent */
export interface ReceiveNewInvitationEvent {
  event: "onReceiveNewInvitation";
  eventID?: string;
  inviteID: string;
  inviter: string;
  groupID: string;
  inviteeList: string[];
  data: string;
  timeout: number;
}

/** schema OnInviteeAcceptedEvent */
export interface InviteeAcceptedEvent {
  event: "onInviteeAccepted";
  eventID?: string;
  inviteID: string;
  invitee: string;
  data: string;
}

/** schema OnInviteeRejectedEvent */
export interface InviteeRejectedEvent {
  event: "onInviteeRejected";
  eventID?: string;
  inviteID: string;
  invitee: string;
  data: string;
}

/** schema OnInvitationCancelledEvent */
export interface InvitationCancelledEvent {
  event: "onInvitationCancelled";
  eventID?: string;
  inviteID: string;
  inviter: string;
  data: string;
}

/** schema OnInvitationTimeoutEvent */
export interface InvitationTimeoutEvent {
  event: "onInvitationTimeout";
  eventID?: string;
  inviteID: string;
  /** Only the invitees that timed out. */
  inviteeList: string[];
}

/** schema OnInvitationModifiedEvent */
export interface InvitationModifiedEvent {
  event: "onInvitationModified";
  eventID?: string;
  inviteID: string;
  data: string;
}

/** Any event the server sends. */
export type SignalingEvent =
  | ReceiveNewInvitationEvent
  | InviteeAcceptedEvent
  | InviteeRejectedEvent
  | InvitationCancelledEvent
  | InvitationTimeoutEvent
  | InvitationModifiedEvent;

/**
 * The six callbacks of V2TIMSignalingListener, with Tencent's positional
 * arguments; each also gets the whole event last (its eventID, and the
 * invitation's timeout for a new one). Implement the ones you need.
 */
export interface SignalingListener {
  onReceiveNewInvitation?(inviteID: string, inviter: string, groupID: string, inviteeList: string[], data: string, event: ReceiveNewInvitationEvent): void;
  onInviteeAccepted?(inviteID: string, invitee: string, data: string, event: InviteeAcceptedEvent): void;
  onInviteeRejected?(inviteID: string, invitee: string, data: string, event: InviteeRejectedEvent): void;
  onInvitationCancelled?(inviteID: string, inviter: string, data: string, event: InvitationCancelledEvent): void;
  onInvitationTimeout?(inviteID: string, inviteeList: string[], event: InvitationTimeoutEvent): void;
  onInvitationModified?(inviteID: string, data: string, event: InvitationModifiedEvent): void;
}

/** A reply frame (schema Reply). */
export interface ReplyFrame {
  id: number;
  code: number;
  desc: string;
  data: unknown;
}
