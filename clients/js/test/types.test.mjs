// The SDK's types and codes against the spec: each interface of
// src/types.ts that mirrors a schema of api/asyncapi.yaml has exactly its
// fields, optional exactly where the schema does not require them; the
// code tables match the spec's ErrorCode and the server's texts.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import ts from "typescript";

import { ServerCode, describe as describeCode } from "../dist/node.js";
import { repoRoot } from "./harness.mjs";
import { schemas } from "./spec.mjs";

const source = ts.createSourceFile("types.ts", readFileSync(new URL("../src/types.ts", import.meta.url), "utf8"), ts.ScriptTarget.ES2022, true);

function declared(name) {
  let found;
  source.forEachChild((n) => {
    if ((ts.isInterfaceDeclaration(n) || ts.isTypeAliasDeclaration(n)) && n.name.text === name) found = n;
  });
  assert.ok(found, `src/types.ts declares no ${name}`);
  return found;
}

/** {field: optional} of an interface. */
function fields(name) {
  const out = {};
  for (const m of declared(name).members) {
    if (ts.isPropertySignature(m)) out[m.name.getText(source)] = Boolean(m.questionToken);
  }
  return out;
}

/** The string literals of a union type alias. */
function literals(name) {
  const t = declared(name).type;
  return t.types.map((u) => u.literal.text).sort();
}

const mirrors = [
  ["LoginResult", "LoginResult"],
  ["SignalingInfo", "Invitation"],
  ["PingResult", "PingResult"],
  ["OfflinePushInfo", "OfflinePushInfo"],
  ["ReplyFrame", "Reply"],
  ["ReceiveNewInvitationEvent", "OnReceiveNewInvitationEvent"],
  ["InviteeAcceptedEvent", "OnInviteeAcceptedEvent"],
  ["InviteeRejectedEvent", "OnInviteeRejectedEvent"],
  ["InvitationCancelledEvent", "OnInvitationCancelledEvent"],
  ["InvitationTimeoutEvent", "OnInvitationTimeoutEvent"],
  ["InvitationModifiedEvent", "OnInvitationModifiedEvent"],
  // Parameters: the request's fields but the frame's own and the positional arguments.
  ["OfflinePushConfig", "SetOfflinePushConfigRequest", ["id", "op"]],
  ["InviteOptions", "InviteRequest", ["id", "op", "invitee", "data"]],
];

for (const [iface, schema, positional = []] of mirrors) {
  test(`${iface} has the fields of schema ${schema}`, () => {
    const s = schemas[schema];
    const want = {};
    for (const f of Object.keys(s.properties)) {
      if (!positional.includes(f)) want[f] = !(s.required ?? []).includes(f);
    }
    assert.deepEqual(fields(iface), want);
  });
}

test("literal unions match the spec's enums", () => {
  assert.deepEqual(literals("InviteeState"), [...schemas.InviteeState.enum].sort());
  assert.deepEqual(literals("PushPlatform"), [...schemas.SetOfflinePushConfigRequest.properties.platform.enum].sort());
});

test("ServerCode lists exactly the spec's error codes", () => {
  assert.deepEqual(
    Object.values(ServerCode).sort((a, b) => a - b),
    schemas.ErrorCode.enum.filter((c) => c !== 0).sort((a, b) => a - b),
  );
});

test("each code's desc is the server's (internal/protocol)", () => {
  const go = readFileSync(path.join(repoRoot, "internal/protocol/protocol.go"), "utf8");
  const consts = Object.fromEntries([...go.matchAll(/^\s*(Code\w+)\s*=\s*(\d+)/gm)].map((m) => [m[1], Number(m[2])]));
  const descs = [...go.matchAll(/^\s*(Code\w+):\s*"([^"]*)",/gm)];
  assert.ok(descs.length >= 16, "read the server's descs");
  for (const [, name, text] of descs) {
    if (consts[name] === 0) continue;
    assert.equal(describeCode(consts[name]), text, `code ${consts[name]} (${name})`);
  }
});
