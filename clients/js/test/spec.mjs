// The schemas of api/asyncapi.yaml, compiled with ajv, and the check that
// every recorded frame matches them: requests by their op, replies by the
// op they answer, events by their name. Beyond the schemas (which allow
// unknown fields), a frame may carry no field the spec does not name.
import { readFileSync } from "node:fs";
import path from "node:path";
import Ajv from "ajv";
import YAML from "yaml";

import { repoRoot, recordedFrames } from "./harness.mjs";
import { describe as describeCode } from "../dist/node.js";

export const spec = YAML.parse(readFileSync(path.join(repoRoot, "api/asyncapi.yaml"), "utf8"));
export const schemas = spec.components.schemas;

const ajv = new Ajv({ strict: false, allErrors: true });
ajv.addSchema({ $id: "asyncapi", components: { schemas } });

export function validator(name) {
  const v = ajv.getSchema(`asyncapi#/components/schemas/${name}`);
  if (!v) throw new Error(`api/asyncapi.yaml has no schema ${name}`);
  return v;
}

/** The request schema of each op. */
export const requestSchema = {
  login: "LoginRequest",
  invite: "InviteRequest",
  inviteInGroup: "InviteInGroupRequest",
  cancel: "CancelRequest",
  accept: "AcceptRequest",
  reject: "RejectRequest",
  modifyInvitation: "ModifyInvitationRequest",
  getSignalingInfo: "GetSignalingInfoRequest",
  ping: "PingRequest",
  setOfflinePushConfig: "SetOfflinePushConfigRequest",
  doBackground: "DoBackgroundRequest",
  doForeground: "DoForegroundRequest",
};

/** The schema of a successful reply's data, by op (null: data is null). */
const resultSchema = {
  login: "LoginResult",
  invite: "InviteID",
  inviteInGroup: "InviteID",
  getSignalingInfo: "Invitation",
  ping: "PingResult",
};

export const eventSchema = {
  onReceiveNewInvitation: "OnReceiveNewInvitationEvent",
  onInviteeAccepted: "OnInviteeAcceptedEvent",
  onInviteeRejected: "OnInviteeRejectedEvent",
  onInvitationCancelled: "OnInvitationCancelledEvent",
  onInvitationTimeout: "OnInvitationTimeoutEvent",
  onInvitationModified: "OnInvitationModifiedEvent",
};

function problems(name, value) {
  const v = validator(name);
  const out = [];
  if (!v(value)) out.push(`${name}: ${ajv.errorsText(v.errors)}`);
  const props = schemas[name].properties;
  if (props && value && typeof value === "object") {
    for (const k of Object.keys(value)) if (!(k in props)) out.push(`${name}: field ${k} is not in the spec`);
  }
  return out;
}

/** Checks one recorded frame; returns what is wrong with it. */
export function checkFrame({ dir, frame, op }) {
  if (dir === "out") {
    const name = requestSchema[frame.op];
    return name ? problems(name, frame) : [`request op ${frame.op} is not in the spec`];
  }
  if (typeof frame.event === "string") {
    const name = eventSchema[frame.event];
    return name ? problems(name, frame) : [`event ${frame.event} is not in the spec`];
  }
  const out = problems("Reply", frame);
  if (frame.code === 0) {
    const name = resultSchema[op];
    if (name) out.push(...problems(name, frame.data));
    else if (frame.data !== null) out.push(`reply to ${op}: data ${JSON.stringify(frame.data)}, want null`);
  } else {
    if (frame.data !== null) out.push(`error reply: data ${JSON.stringify(frame.data)}, want null`);
    const want = describeCode(frame.code);
    if (frame.code === 10007 ? !frame.desc.startsWith(want) : frame.desc !== want) {
      out.push(`error ${frame.code}: desc ${JSON.stringify(frame.desc)}, the SDK says ${JSON.stringify(want)}`);
    }
  }
  return out;
}

/** Throws when a recorded frame does not match the spec; returns the counts checked. */
export function checkRecordedFrames() {
  const bad = [];
  const seen = { requests: new Set(), events: new Set(), replies: 0 };
  // Requests the server refused as malformed (6017) or too large (80002)
  // are the tests' deliberately bad input: only their replies are checked.
  const refused = new Set(
    recordedFrames
      .filter((r) => r.dir === "in" && (r.frame.code === 6017 || r.frame.code === 80002))
      .map((r) => `${r.client}/${r.frame.id}`),
  );
  for (const r of recordedFrames) {
    if (r.dir === "out" && refused.has(`${r.client}/${r.frame.id}`)) continue;
    for (const p of checkFrame(r)) bad.push(`${p}\n    in ${r.dir} ${JSON.stringify(r.frame).slice(0, 300)}`);
    if (r.dir === "out") seen.requests.add(r.frame.op);
    else if (r.frame.event) seen.events.add(r.frame.event);
    else seen.replies++;
  }
  if (bad.length) throw new Error(`${bad.length} frames do not match api/asyncapi.yaml:\n${bad.slice(0, 20).join("\n")}`);
  return { frames: recordedFrames.length, requests: [...seen.requests].sort(), events: [...seen.events].sort(), replies: seen.replies };
}
