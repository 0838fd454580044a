// Framing: frames split and joined in any way, empty and oversized frames.
import assert from "node:assert/strict";
import { test } from "node:test";

import { encodeFrame, FrameReader, MAX_FRAME, ProtocolError } from "../dist/esm/index.js";

const ping = (id) => ({ type: "ping", id });

test("a frame split byte by byte arrives whole, once", () => {
  const reader = new FrameReader();
  const frame = encodeFrame(ping(7));
  const got = [];
  for (const byte of frame) got.push(...reader.push(Uint8Array.of(byte)));
  assert.deepEqual(got, [ping(7)]);
  assert.equal(reader.pending, 0);
});

test("frames joined in one chunk come out in order, a partial one waits", () => {
  const reader = new FrameReader();
  const [a, b, c] = [encodeFrame(ping(1)), encodeFrame(ping(2)), encodeFrame(ping(3))];
  const joined = new Uint8Array([...a, ...b, ...c.subarray(0, 5)]);
  assert.deepEqual(reader.push(joined), [ping(1), ping(2)]);
  assert.equal(reader.pending, 5);
  assert.deepEqual(reader.push(c.subarray(5)), [ping(3)]);
});

test("an empty frame and an oversized one are protocol errors", () => {
  assert.throws(() => new FrameReader().push(Uint8Array.of(0, 0, 0, 0)), ProtocolError);
  const over = new Uint8Array(4);
  new DataView(over.buffer).setUint32(0, MAX_FRAME + 1);
  assert.throws(() => new FrameReader().push(over), /over/);
  assert.throws(() => new FrameReader(8).push(encodeFrame({ type: "bye", reason: "long enough" })), /over 8/);
});

test("a body that is not a message is a protocol error", () => {
  const notMap = Uint8Array.of(0, 0, 0, 1, 0x05); // the integer 5
  assert.throws(() => new FrameReader().push(notMap), /must hold a map/);
  const unknown = encodeFrame({ type: "ping", id: 1 });
  unknown[unknown.length - 6] = 0x71; // "ping" -> "qing"
  assert.throws(() => new FrameReader().push(unknown), /unknown message type/);
});

test("undefined fields are left out, never sent as nil", () => {
  const frame = encodeFrame({ type: "hook_result", id: 1, result: { ok: true }, error: undefined });
  assert.deepEqual(new FrameReader().push(frame), [{ type: "hook_result", id: 1, result: { ok: true } }]);
});
