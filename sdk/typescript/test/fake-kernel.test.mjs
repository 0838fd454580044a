// A service under the fake kernel, in process: what a service author's unit test looks like.
import assert from "node:assert/strict";
import { test } from "node:test";

import { FakeKernel, MethodError, reject, serve, syscall, SyscallError } from "../dist/esm/index.js";

test("a service says hello, gates, answers methods and calls syscalls", async () => {
  const seen = [];
  const kernel = await FakeKernel.start((name, params) => {
    if (name === "kernel.config") throw new SyscallError("denied", "not for services");
    seen.push([name, params]);
    return { ok: true };
  });
  Object.assign(process.env, kernel.env("guard"));
  const started = [];
  const running = serve({
    hooks: {
      "tool.before": { fn: (input, output) => (output.args.command.includes("DROP") ? reject("no drops") : undefined), failure: "fail-closed" },
      "history.append": () => {},
    },
    methods: { count: (params) => ({ n: params.items.length }), deny: () => { throw new MethodError("denied", "admins only"); } },
    start: async () => {
      started.push(await syscall("kernel.status", {}));
      await assert.rejects(syscall("kernel.config"), (error) => error.code === "denied");
    },
  });
  const hello = await kernel.hello;
  assert.deepEqual(hello.hooks.map((h) => [h.name, h.kind, h.failure]), [
    ["tool.before", "gate", "fail-closed"],
    ["history.append", "notify", undefined],
  ]);
  assert.deepEqual(hello.methods, ["count", "deny"]);
  const ls = { tool: "bash", args: { command: "ls" } };
  assert.deepEqual(await kernel.gate("tool.before", {}, ls), ls);
  assert.deepEqual(await kernel.gate("tool.before", {}, { ...ls, args: { command: "DROP TABLE x" } }), {
    verdict: "reject", reason: "no drops",
  });
  assert.equal(await kernel.notify("history.append", { seq: 1 }), null);
  assert.deepEqual(await kernel.method("count", { items: [1, 2, 3] }), { n: 3 });
  await assert.rejects(kernel.method("deny", {}), (error) => error.code === "denied");
  kernel.close();
  assert.equal(await running, 0);
  assert.deepEqual(started, [{ ok: true }]);
  assert.deepEqual(seen, [["kernel.status", {}]]);
});
