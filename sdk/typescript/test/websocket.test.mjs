// The WebSocket wire: one binary message per frame (the MessagePack body, no
// length prefix); text, empty and oversized messages end the connection.
import assert from "node:assert/strict";
import { test } from "node:test";

import { decode } from "@msgpack/msgpack";
import { WebSocketServer } from "ws";

import { encodeBody, MAX_FRAME, openWire, Peer } from "../dist/esm/index.js";

/** A WebSocket server on a free loopback port; `onConnection(ws)` per client. */
async function server(onConnection) {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, maxPayload: 2 * MAX_FRAME });
  wss.on("connection", onConnection);
  await new Promise((resolve) => wss.once("listening", resolve));
  return { url: `ws://127.0.0.1:${wss.address().port}/`, close: () => wss.close() };
}

test("each frame leaves as one binary message holding the body alone", async () => {
  const got = [];
  let arrived;
  const both = new Promise((resolve) => (arrived = resolve));
  const kernel = await server((ws) =>
    ws.on("message", (data, isBinary) => {
      got.push({ isBinary, body: new Uint8Array(data) });
      if (got.length === 2) arrived();
    }),
  );
  const wire = await openWire(kernel.url);
  wire.listen({ message() {}, invalid() {}, end() {} });
  wire.write({ type: "ping", id: 1 });
  wire.write({ type: "hello", role: "client", sdk: "t/1", token: undefined });
  await both;
  assert.deepEqual(got[0], { isBinary: true, body: encodeBody({ type: "ping", id: 1 }) });
  assert.deepEqual(decode(got[1].body), { type: "hello", role: "client", sdk: "t/1" }); // no nil
  wire.end();
  kernel.close();
});

test("a peer over WebSocket answers pings and routes answers, even those sent at once", async () => {
  let pong;
  const ponged = new Promise((resolve) => (pong = resolve));
  const kernel = await server((ws) => {
    ws.on("message", (data) => {
      const message = decode(new Uint8Array(data));
      if (message.type === "pong") pong(message);
      if (message.type === "syscall") {
        ws.send(encodeBody({ type: "syscall_result", id: message.id, result: { ok: 1 } }), { binary: true });
      }
    });
    ws.send(encodeBody({ type: "ping", id: 9 }), { binary: true }); // may share a read with the upgrade
  });
  const peer = await Peer.open(kernel.url, () => {});
  const answer = await peer.request("syscall", { name: "kernel.status", params: {} });
  assert.deepEqual(answer, { type: "syscall_result", id: 1, result: { ok: 1 } });
  assert.deepEqual(await ponged, { type: "pong", id: 9 });
  peer.close();
  assert.match(await peer.closed, /closed by this side/);
  kernel.close();
});

for (const [what, send, reason] of [
  ["a text message", (ws) => ws.send("hello"), /text WebSocket message/],
  ["an empty binary message", (ws) => ws.send(new Uint8Array(0), { binary: true }), /empty frame/],
  [
    "an oversized message",
    (ws) => ws.send(new Uint8Array(MAX_FRAME + 1), { binary: true }),
    /Max payload size exceeded/,
  ],
]) {
  test(`${what} ends the connection with a reason`, async () => {
    const kernel = await server((ws) => send(ws));
    const peer = await Peer.open(kernel.url, () => {});
    assert.match(await peer.closed, reason);
    kernel.close();
  });
}
