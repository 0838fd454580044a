/**
 * The wire protocol (docs/specs/aos-service.md): each frame is a 4-byte
 * big-endian length and a MessagePack map whose "type" names the message.
 */
import { decode, encode } from "@msgpack/msgpack";

import type { ErrorCode, FailurePolicy, HookKind } from "./generated.js";

export const PROTOCOL_VERSION = 1;
/** Largest frame body a peer accepts (bytes); a longer length prefix is a protocol error. */
export const MAX_FRAME = 16 * 1024 * 1024;
const HEADER = 4;

export interface HookDecl {
  name: string;
  kind?: HookKind;
  priority?: "first" | "normal" | "last";
  timeout?: number;
  failure?: FailurePolicy;
}

export type Message =
  | { type: "hello"; role: "service" | "client"; sdk: string; protocol?: number; skill?: string | null; token?: string | null; hooks?: HookDecl[]; methods?: string[] }
  | { type: "welcome"; node: string; version: string; principal: string; protocol?: number; max_frame?: number }
  | { type: "hook_call"; id: number; hook: string; args: Record<string, unknown>; timeout?: number | null; traceparent?: string | null }
  | { type: "hook_result"; id: number; result?: unknown; error?: string | null; code?: ErrorCode | null }
  | { type: "syscall"; id: number; name: string; params?: Record<string, unknown>; traceparent?: string | null }
  | { type: "syscall_result"; id: number; result?: unknown }
  | { type: "event"; subscription: number; topic: string; data?: unknown }
  | { type: "ping"; id: number }
  | { type: "pong"; id: number }
  | { type: "bye"; reason?: string }
  | { type: "error"; code: ErrorCode; message: string; id?: number | null };

export type MessageType = Message["type"];
const TYPES: ReadonlySet<string> = new Set([
  "hello", "welcome", "hook_call", "hook_result", "syscall", "syscall_result",
  "event", "ping", "pong", "bye", "error",
]);

/** A frame that breaks the protocol: the connection cannot go on. */
export class ProtocolError extends Error {
  override name = "ProtocolError";
}

/** One message's MessagePack body. `undefined` fields are left out (never sent as nil). */
export function encodeBody(message: Message): Uint8Array {
  const body = encode(message, { ignoreUndefined: true });
  if (body.length > MAX_FRAME) {
    throw new ProtocolError(`a ${message.type} frame of ${body.length} bytes is over ${MAX_FRAME}`);
  }
  return body;
}

/** One message as a stream carries it: length prefix + body. */
export function encodeFrame(message: Message): Uint8Array {
  const body = encodeBody(message);
  const frame = new Uint8Array(HEADER + body.length);
  new DataView(frame.buffer).setUint32(0, body.length);
  frame.set(body, HEADER);
  return frame;
}

/** One frame's body as a message; a body that is not one is a ProtocolError. */
export function decodeBody(body: Uint8Array): Message {
  let value: unknown;
  try {
    value = decode(body);
  } catch (error) {
    throw new ProtocolError(`undecodable MessagePack: ${(error as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ProtocolError("a frame must hold a map");
  }
  const type = (value as { type?: unknown }).type;
  if (typeof type !== "string" || !TYPES.has(type)) {
    throw new ProtocolError(`unknown message type ${JSON.stringify(type)}`);
  }
  return value as Message;
}

/** Frames from a byte stream that arrives in pieces of any size. */
export class FrameReader {
  private buffered = new Uint8Array(0);

  constructor(private readonly maxFrame: number = MAX_FRAME) {}

  /** Add bytes; return every message now complete, in order. */
  push(chunk: Uint8Array): Message[] {
    const joined = new Uint8Array(this.buffered.length + chunk.length);
    joined.set(this.buffered);
    joined.set(chunk, this.buffered.length);
    const messages: Message[] = [];
    let at = 0;
    while (joined.length - at >= HEADER) {
      const length = new DataView(joined.buffer, joined.byteOffset + at).getUint32(0);
      if (length === 0) throw new ProtocolError("an empty frame");
      if (length > this.maxFrame) {
        throw new ProtocolError(`a frame of ${length} bytes is over ${this.maxFrame}`);
      }
      if (joined.length - at - HEADER < length) break;
      messages.push(decodeBody(joined.subarray(at + HEADER, at + HEADER + length)));
      at += HEADER + length;
    }
    this.buffered = joined.slice(at);
    return messages;
  }

  /** Bytes of a frame begun but not complete. */
  get pending(): number {
    return this.buffered.length;
  }
}
