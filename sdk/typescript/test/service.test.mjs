// defineService's pieces without a kernel: the definition checks and the answers.
import assert from "node:assert/strict";
import { test } from "node:test";

import { MethodError, reject, ServiceDefinitionError } from "../dist/esm/index.js";
import { answer, build } from "../dist/esm/service.js";

test("a misspelt or in-process-only hook fails the definition", () => {
  assert.throws(() => build({ hooks: { "tool.befor": () => {} } }), ServiceDefinitionError);
  assert.throws(() => build({ hooks: { "cli.register": () => {} } }), /register hook/);
  const built = build({ hooks: { "tool.before": { fn: () => {}, timeout: 2, failure: "fail-closed" } } });
  assert.deepEqual(built.decls, [
    { name: "tool.before", kind: "gate", priority: undefined, timeout: 2, failure: "fail-closed" },
  ]);
});

test("a gate that returns nothing passes the output through; reject refuses", async () => {
  const built = build({
    hooks: { "tool.before": (_input, output) => (output.args.command === "rm" ? reject("no") : undefined) },
  });
  const call = (command) => ({ type: "hook_call", id: 3, hook: "tool.before", args: { input: {}, output: { args: { command } } } });
  assert.deepEqual(await answer(built, call("ls")), { type: "hook_result", id: 3, result: { args: { command: "ls" } } });
  assert.deepEqual(await answer(built, call("rm")), {
    type: "hook_result", id: 3, result: { verdict: "reject", reason: "no" },
  });
});

test("methods answer, refuse with their code, and a thrown error is unavailable", async () => {
  const built = build({
    methods: {
      echo: (params) => params,
      nope: () => { throw new MethodError("denied", "not for you"); },
      boom: () => { throw new TypeError("bad"); },
    },
  });
  const call = (name) => ({ type: "hook_call", id: 1, hook: `method:${name}`, args: { params: { a: 1 }, caller: {} } });
  assert.deepEqual(await answer(built, call("echo")), { type: "hook_result", id: 1, result: { a: 1 } });
  assert.deepEqual(await answer(built, call("nope")), { type: "hook_result", id: 1, error: "not for you", code: "denied" });
  assert.deepEqual(await answer(built, call("boom")), { type: "hook_result", id: 1, error: "TypeError: bad", code: "unavailable" });
  assert.equal((await answer(built, call("missing"))).code, "unknown");
});

test("a handler sees its hook call's trace context, and only its own", async () => {
  const { traceparent } = await import("../dist/esm/index.js");
  const built = build({
    hooks: { "tool.before": async (_input, output) => ({ ...output, seen: traceparent() ?? null }) },
  });
  const parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  const call = (context) => ({
    type: "hook_call", id: 4, hook: "tool.before", args: { input: {}, output: {} }, traceparent: context,
  });
  const [traced, untraced] = await Promise.all([answer(built, call(parent)), answer(built, call(null))]);
  assert.equal(traced.result.seen, parent);
  assert.equal(untraced.result.seen, null);
  assert.equal(traceparent(), undefined); // outside any call
});
