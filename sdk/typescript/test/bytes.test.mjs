// The spec's worked example, byte by byte: the fixtures both SDKs' tests read.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { encodeFrame, FrameReader } from "../dist/esm/index.js";

const examples = JSON.parse(
  readFileSync(new URL("../../fixtures/wire-examples.json", import.meta.url), "utf8"),
);
const bytes = (hex) => Uint8Array.from(hex.split(" "), (b) => parseInt(b, 16));

for (const example of examples) {
  test(`${example.name}: the bytes decode to the message`, () => {
    assert.deepEqual(new FrameReader().push(bytes(example.hex)), [example.message]);
  });
  if (example.exact) {
    test(`${example.name}: the message encodes to the same bytes`, () => {
      assert.deepEqual([...encodeFrame(example.message)], [...bytes(example.hex)]);
    });
  }
}
