// The demo page's SDK (internal/demo/static/signald-client.js) is committed
// so that `go build` needs no Node: it must be what the source builds.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { bundle, bundlePath } from "../scripts/bundle.mjs";

test("the committed browser bundle is built from the current source", async () => {
  const want = await bundle();
  const got = readFileSync(bundlePath, "utf8");
  assert.ok(got === want, "internal/demo/static/signald-client.js is stale: run `npm run bundle` in clients/js and commit it");
});

test("the browser bundle imports nothing (no runtime dependency in browsers)", () => {
  const got = readFileSync(bundlePath, "utf8");
  assert.doesNotMatch(got, /^\s*import\s/m);
  assert.doesNotMatch(got, /require\(/);
  assert.match(got, /export \{/);
});
