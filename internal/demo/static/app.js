// The demo page: a small call app on @signald/client (signald-client.js,
// the SDK's browser bundle). Signaling only: it rings, answers and shows
// outcomes; no audio or video flows.
import { SignalingClient, SignalingError } from "./signald-client.js";

const $ = (id) => document.getElementById(id);
const wsURL = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/ws`;

let config = { dev: false, group: "demo" };
let client = null;
let me = "";
let clockOffset = 0; // server clock − ours, from the login reply
let outgoing = null; // {id, kind, to, states, deadline, over}
const incoming = new Map(); // inviteID → {el, inviter, groupID, inviteeList, deadline, over}

// One deviceID per tab, kept across reloads of the tab: it keys the
// eventID the SDK resumes from, so two tabs of one user never share it.
const deviceID =
  sessionStorage.getItem("signald-demo-device") ||
  (() => {
    const id = "web-" + crypto.getRandomValues(new Uint32Array(2)).join("");
    sessionStorage.setItem("signald-demo-device", id);
    return id;
  })();

// ---- helpers ----

function serverNow() {
  return Date.now() + clockOffset;
}

function initials(name) {
  return (name || "?").trim().slice(0, 2).toUpperCase();
}

function hue(name) {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

function paintAvatar(el, name) {
  el.textContent = initials(name);
  el.style.background = `hsl(${hue(name)} 60% 45%)`;
}

function secondsLeft(deadline) {
  return Math.max(0, Math.ceil((deadline - serverNow()) / 1000));
}

function describeError(err) {
  if (err instanceof SignalingError) {
    const hints = {
      6017: "check the name (not yourself, 1–128 characters)",
      8010: "that call is already over",
      10007: "everyone must be in the group",
      10010: "the group does not exist yet",
      [-1001]: "no answer from the server in time",
      [-1006]: "cannot reach the server",
    };
    return `${err.desc}${hints[err.code] ? ` — ${hints[err.code]}` : ""} (${err.code})`;
  }
  return String(err?.message || err);
}

function toast(text, kind = "info") {
  const el = document.createElement("div");
  el.className = `toast ${kind}`;
  el.textContent = text;
  el.setAttribute("data-testid", "toast");
  document.body.append(el);
  setTimeout(() => el.remove(), 5000);
}

// ---- the frame log ----

const replyOps = new Map(); // request id → op, to label replies

function logFrame(dir, frame) {
  if (dir === "out") replyOps.set(frame.id, frame.op);
  const answered = dir === "in" ? replyOps.get(frame.id) : undefined;
  if (dir === "in" && frame.id) replyOps.delete(frame.id);
  if (!$("log-pings").checked && (frame.op === "ping" || answered === "ping")) return;
  const shown = { ...frame };
  if (typeof shown.userSig === "string") shown.userSig = shown.userSig.slice(0, 12) + "…";
  const li = document.createElement("li");
  li.className = dir === "out" ? "out" : frame.event ? "event" : frame.code ? "error" : "in";
  const time = new Date().toLocaleTimeString([], { hour12: false });
  const arrow = dir === "out" ? "→" : "←";
  const label = frame.op || frame.event || `${answered ?? "reply"} ${frame.code ? `✗ ${frame.code}` : "✓"}`;
  li.innerHTML = `<span class="t"></span><span class="dir"></span><span class="label"></span><code></code>`;
  li.children[0].textContent = time;
  li.children[1].textContent = arrow;
  li.children[2].textContent = label;
  li.children[3].textContent = JSON.stringify(shown);
  const list = $("frames");
  list.prepend(li);
  while (list.children.length > 200) list.lastChild.remove();
}

// ---- connection state ----

const stateText = { connected: "Connected", connecting: "Connecting…", reconnecting: "Reconnecting…", disconnected: "Offline" };

function showConnection(change) {
  const pill = $("conn");
  pill.dataset.state = change.state;
  pill.textContent = stateText[change.state];
  if (change.state === "reconnecting" && change.retryIn > 1000) pill.textContent = `Reconnecting in ${Math.round(change.retryIn / 1000)} s…`;
  if (change.reason === "reconnected" && change.recovered !== true) void refreshCalls();
  if (change.state === "disconnected" && change.reason === "loginFailed") {
    toast(`Signed out: ${describeError(change.error)}`, "error");
    signedOut();
  }
}

/** After a reconnect that could not replay everything: ask the server how each call stands. */
async function refreshCalls() {
  const ids = [...incoming.keys()].filter((id) => !incoming.get(id).over);
  if (outgoing && !outgoing.over) ids.push(outgoing.id);
  for (const id of ids) {
    try {
      const info = await client.getSignalingInfo(id);
      if (outgoing?.id === id) {
        Object.assign(outgoing.states, info.states);
        renderOutgoing();
      } else if (incoming.has(id) && info.states[me] !== "pending") {
        endIncoming(id, info.states[me] === "accepted" ? "Answered on another device" : "Missed call");
      }
    } catch (err) {
      if (err.code === 8010) {
        if (outgoing?.id === id) finishOutgoing("Call ended");
        else endIncoming(id, "Missed call");
      }
    }
  }
}

// ---- outgoing calls ----

async function placeCall(kind, to) {
  if (outgoing && !outgoing.over) {
    toast("Finish the current call first", "error");
    return;
  }
  const timeout = Math.max(1, Math.min(3600, Number($("ring-for").value) || 30));
  const data = JSON.stringify({ cmd: $("video").checked ? "videoCall" : "audioCall", from: "signald demo" });
  try {
    let id;
    if (kind === "group") {
      if (config.dev) {
        const r = await fetch("group", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ members: [me, ...to] }) });
        if (!r.ok) throw new Error((await r.json()).error);
      }
      id = await client.inviteInGroup(config.group, to, data, { timeout, offlinePushInfo: { title: `${me} (group ${config.group})`, desc: "Incoming group call" } });
    } else {
      id = await client.invite(to[0], data, { timeout, offlinePushInfo: { title: me, desc: "Incoming call" } });
    }
    outgoing = { id, kind, to, states: Object.fromEntries(to.map((u) => [u, "pending"])), deadline: serverNow() + timeout * 1000, over: false };
    renderOutgoing();
    // The server's deadline, on its clock.
    client.getSignalingInfo(id).then((info) => {
      if (outgoing?.id === id) outgoing.deadline = info.deadline;
    }, () => {});
  } catch (err) {
    toast(`Could not call: ${describeError(err)}`, "error");
  }
}

function outcomeWord(state) {
  return { pending: "Ringing…", accepted: "Accepted", rejected: "Rejected", timeout: "No answer", cancelled: "Cancelled" }[state];
}

function renderOutgoing() {
  const o = outgoing;
  const box = $("outgoing");
  if (!o) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  box.dataset.inviteId = o.id;
  const title = o.kind === "group" ? `Group call · ${o.to.join(", ")}` : `Calling ${o.to[0]}`;
  $("out-title").textContent = title;
  paintAvatar($("out-avatar"), o.kind === "group" ? config.group : o.to[0]);
  const states = Object.values(o.states);
  const pending = states.filter((s) => s === "pending").length;
  let status;
  if (o.kind === "one") {
    status = outcomeWord(o.states[o.to[0]]);
  } else if (pending) {
    const joined = states.filter((s) => s === "accepted").length;
    status = `Ringing ${pending} · ${joined} joined`;
  } else {
    status = states.includes("accepted") ? "Accepted" : states.every((s) => s === "timeout") ? "No answer" : states.every((s) => s === "cancelled") ? "Cancelled" : "Rejected";
  }
  $("out-status").textContent = status;
  box.dataset.status = status;
  const list = $("out-members");
  list.replaceChildren();
  if (o.kind === "group") {
    for (const [u, s] of Object.entries(o.states)) {
      const li = document.createElement("li");
      li.dataset.user = u;
      li.dataset.state = s;
      li.innerHTML = `<span class="dot"></span><span class="who"></span><span class="what"></span>`;
      li.children[1].textContent = u;
      li.children[2].textContent = outcomeWord(s);
      list.append(li);
    }
  }
  if (!pending && !o.over) {
    o.over = true;
    addHistory(o.kind === "group" ? `Group call to ${o.to.join(", ")}` : `Call to ${o.to[0]}`, status);
  }
  $("cancel").hidden = o.over;
  $("dismiss").hidden = !o.over;
  box.classList.toggle("over", o.over);
  tick();
}

function finishOutgoing(status) {
  if (!outgoing) return;
  for (const u of Object.keys(outgoing.states)) if (outgoing.states[u] === "pending") outgoing.states[u] = "cancelled";
  renderOutgoing();
  if (status) $("out-status").textContent = status;
}

// ---- incoming calls ----

function ring(inviteID, inviter, groupID, inviteeList, data, ev) {
  if (incoming.has(inviteID)) return;
  const el = $("incoming-template").content.firstElementChild.cloneNode(true);
  el.dataset.inviteId = inviteID;
  el.dataset.inviter = inviter;
  const others = inviteeList.filter((u) => u !== me);
  let kind = "call";
  try {
    kind = JSON.parse(data).cmd === "audioCall" ? "audio call" : "video call";
  } catch {
    // the app's data is opaque: any string will do
  }
  el.querySelector(".call-title").textContent = groupID ? `${inviter} is calling the group` : `${inviter} is calling you`;
  el.querySelector(".call-status").textContent = groupID ? `Group ${groupID} · with ${others.join(", ") || "you"}` : `Incoming ${kind}`;
  paintAvatar(el.querySelector(".avatar"), inviter);
  const call = { el, inviter, groupID, inviteeList, deadline: ev.timeout ? serverNow() + ev.timeout * 1000 : 0, over: false };
  incoming.set(inviteID, call);
  el.querySelector("[data-testid=accept]").onclick = () => answer(inviteID, "accept");
  el.querySelector("[data-testid=reject]").onclick = () => answer(inviteID, "reject");
  el.querySelector("[data-testid=close]").onclick = () => {
    el.remove();
    incoming.delete(inviteID);
  };
  $("incoming").append(el);
  // The countdown runs to the server's deadline.
  client.getSignalingInfo(inviteID).then((info) => {
    call.deadline = info.deadline;
    if (info.states[me] && info.states[me] !== "pending") endIncoming(inviteID, "Answered on another device");
    tick();
  }, () => {});
  tick();
}

async function answer(inviteID, how) {
  const call = incoming.get(inviteID);
  if (!call || call.over) return;
  for (const b of call.el.querySelectorAll("button")) b.disabled = true;
  try {
    if (how === "accept") await client.accept(inviteID, JSON.stringify({ camera: $("video").checked }));
    else await client.reject(inviteID, JSON.stringify({ reason: "busy" }));
    endIncoming(inviteID, how === "accept" ? (call.groupID ? "You joined" : "Accepted") : "Rejected");
  } catch (err) {
    endIncoming(inviteID, err.code === 8010 ? "Call already ended" : `Failed: ${describeError(err)}`);
  }
}

function endIncoming(inviteID, status) {
  const call = incoming.get(inviteID);
  if (!call || call.over) return;
  call.over = true;
  call.el.classList.add("over");
  call.el.dataset.status = status;
  call.el.querySelector(".call-status").textContent = status;
  call.el.querySelector(".avatar").classList.remove("ringing");
  call.el.querySelector("[data-testid=accept]").hidden = true;
  call.el.querySelector("[data-testid=reject]").hidden = true;
  call.el.querySelector("[data-testid=close]").hidden = false;
  call.el.querySelector("[data-testid=incoming-countdown]").textContent = "";
  addHistory(call.groupID ? `Group call from ${call.inviter}` : `Call from ${call.inviter}`, status);
}

/** Who joined or declined a group call this user is part of. */
function noteMember(inviteID, who, what) {
  const call = incoming.get(inviteID);
  if (!call || who === me) return;
  const note = document.createElement("div");
  note.className = `note ${what}`;
  note.textContent = `${who} ${what}`;
  call.el.querySelector(".call-head").after(note);
}

// ---- events ----

const listener = {
  onReceiveNewInvitation: ring,
  onInviteeAccepted(inviteID, invitee) {
    if (outgoing?.id === inviteID) {
      outgoing.states[invitee] = "accepted";
      renderOutgoing();
    } else if (invitee === me) {
      endIncoming(inviteID, "Answered on another device");
    } else {
      noteMember(inviteID, invitee, "joined");
    }
  },
  onInviteeRejected(inviteID, invitee) {
    if (outgoing?.id === inviteID) {
      outgoing.states[invitee] = "rejected";
      renderOutgoing();
    } else if (invitee === me) {
      endIncoming(inviteID, "Rejected on another device");
    } else {
      noteMember(inviteID, invitee, "declined");
    }
  },
  onInvitationCancelled(inviteID, inviter) {
    if (outgoing?.id === inviteID) finishOutgoing("Cancelled");
    else endIncoming(inviteID, `Missed call · ${inviter} hung up`);
  },
  onInvitationTimeout(inviteID, inviteeList) {
    if (outgoing?.id === inviteID) {
      for (const u of inviteeList) outgoing.states[u] = "timeout";
      renderOutgoing();
    } else if (inviteeList.includes(me)) {
      endIncoming(inviteID, "Missed call · no answer in time");
    }
  },
  onInvitationModified(inviteID, data) {
    const call = incoming.get(inviteID);
    if (!call || call.over) return;
    try {
      const cmd = JSON.parse(data).cmd;
      call.el.querySelector(".call-status").textContent = `Now a ${cmd === "audioCall" ? "audio" : "video"} call`;
    } catch {
      // opaque data
    }
  },
};

// ---- history and countdowns ----

function addHistory(what, outcome) {
  const list = $("history");
  list.querySelector(".empty")?.remove();
  const li = document.createElement("li");
  li.innerHTML = `<span class="what"></span><span class="outcome"></span><span class="t muted"></span>`;
  li.children[0].textContent = what;
  li.children[1].textContent = outcome;
  li.children[1].dataset.outcome = outcome.split(" ")[0].toLowerCase();
  li.children[2].textContent = new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  list.prepend(li);
}

function tick() {
  if (outgoing && !outgoing.over) $("out-countdown").textContent = `${secondsLeft(outgoing.deadline)} s`;
  else $("out-countdown").textContent = "";
  for (const call of incoming.values()) {
    if (!call.over && call.deadline) call.el.querySelector("[data-testid=incoming-countdown]").textContent = `${secondsLeft(call.deadline)} s`;
  }
}
setInterval(tick, 250);

// ---- sign in and out ----

async function userSigFor(user) {
  if (!config.dev) {
    const pasted = $("token").value.trim();
    if (!pasted) throw new Error("paste a userSig for this user");
    return pasted;
  }
  const r = await fetch(`token?user=${encodeURIComponent(user)}`);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error);
  return body.userSig;
}

async function signIn(user) {
  $("signin-error").textContent = "";
  $("signin").disabled = true;
  try {
    const userSig = await userSigFor(user);
    client = new SignalingClient({ url: wsURL, onFrame: logFrame, refreshUserSig: config.dev ? userSigFor : undefined });
    client.addSignalingListener(listener);
    client.addConnectionListener({ onConnectionStateChanged: showConnection });
    const r = await client.login(user, userSig, { deviceID });
    clockOffset = r.serverTime - Date.now();
    me = user;
    $("me").textContent = user;
    $("session").hidden = false;
    $("signin-view").hidden = true;
    $("app-view").hidden = false;
    document.title = `${user} · signald call demo`;
    history.replaceState(null, "", `?user=${encodeURIComponent(user)}`);
    $("callee").focus();
  } catch (err) {
    client = null;
    $("signin-error").textContent = `Could not sign in: ${describeError(err)}`;
  } finally {
    $("signin").disabled = false;
  }
}

function signedOut() {
  client = null;
  me = "";
  outgoing = null;
  for (const call of incoming.values()) call.el.remove();
  incoming.clear();
  $("session").hidden = true;
  $("app-view").hidden = true;
  $("signin-view").hidden = false;
  renderOutgoing();
  document.title = "signald · call demo";
}

// ---- wiring ----

$("signin-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const user = $("user").value.trim();
  if (user) void signIn(user);
});

$("signout").addEventListener("click", async () => {
  await client?.logout();
  signedOut();
});

$("call-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const callee = $("callee").value.trim();
  if (callee) void placeCall("one", [callee]);
});

$("group-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const members = [...new Set($("members").value.split(/[\s,]+/).map((s) => s.trim()).filter((s) => s && s !== me))];
  if (members.length) void placeCall("group", members);
});

$("cancel").addEventListener("click", async () => {
  if (!outgoing || outgoing.over) return;
  try {
    await client.cancel(outgoing.id);
    finishOutgoing("Cancelled");
  } catch (err) {
    if (err.code !== 8010) toast(`Could not cancel: ${describeError(err)}`, "error");
  }
});

$("dismiss").addEventListener("click", () => {
  outgoing = null;
  renderOutgoing();
});

$("log-clear").addEventListener("click", () => $("frames").replaceChildren());

(async () => {
  try {
    config = await (await fetch("config.json")).json();
  } catch {
    // keep the defaults: paste a token
  }
  $("token-row").hidden = config.dev;
  if (!config.dev) $("group-hint").textContent = `Rings members of the group “${config.group}”; add them with the admin API (PUT /v1/groups/${config.group}/members).`;
  const wanted = new URLSearchParams(location.search).get("user");
  if (wanted) $("user").value = wanted;
  document.body.dataset.ready = "true";
})();
