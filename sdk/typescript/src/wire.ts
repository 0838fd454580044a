/**
 * How frames travel. A Unix socket carries each frame as a 4-byte big-endian
 * length and the MessagePack body; a WebSocket carries each frame as one binary
 * message holding the body alone. A Peer speaks the protocol over either.
 */
import { connect, type Socket } from "node:net";
import { WebSocket } from "ws";

import { decodeBody, encodeBody, encodeFrame, FrameReader, MAX_FRAME, type Message, ProtocolError } from "./protocol.js";

export interface WireEvents {
  /** One complete message, in order. */
  message(message: Message): void;
  /** A frame that breaks the protocol: the connection cannot go on. */
  invalid(why: string): void;
  /** The connection ended (or failed). */
  end(why: string): void;
}

export interface Wire {
  /** Start delivering what arrives (once). */
  listen(on: WireEvents): void;
  write(message: Message): void;
  /** End the connection once what was written has left. */
  end(): void;
}

/** Length-prefixed frames on a byte stream (a Unix socket). */
export function streamWire(socket: Socket): Wire {
  const reader = new FrameReader();
  return {
    listen(on) {
      socket.on("data", (chunk: Buffer) => {
        let messages: Message[];
        try {
          messages = reader.push(chunk);
        } catch (error) {
          on.invalid((error as ProtocolError).message);
          return;
        }
        for (const message of messages) on.message(message);
      });
      socket.on("close", () => on.end("the kernel closed the connection"));
      socket.on("error", (error) => on.end(`connection error: ${error.message}`));
    },
    write: (message) => void socket.write(encodeFrame(message)),
    end: () => void socket.end(),
  };
}

/**
 * One binary WebSocket message per frame. Listens from the moment it is made:
 * messages that came with the upgrade's answer wait for `listen`.
 */
export function webSocketWire(ws: WebSocket): Wire {
  let on: WireEvents | null = null;
  const early: ((to: WireEvents) => void)[] = [];
  const deliver = (event: (to: WireEvents) => void) => (on ? event(on) : early.push(event));
  ws.on("message", (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
    if (!isBinary) return deliver((to) => to.invalid("a text WebSocket message: each frame is one binary message"));
    const body = Array.isArray(data) ? Buffer.concat(data) : new Uint8Array(data as ArrayBuffer);
    if (body.length === 0) return deliver((to) => to.invalid("an empty frame"));
    let message: Message;
    try {
      message = decodeBody(body);
    } catch (error) {
      return deliver((to) => to.invalid((error as ProtocolError).message));
    }
    deliver((to) => to.message(message));
  });
  ws.on("close", (code: number, reason: Buffer) =>
    deliver((to) => to.end(`the WebSocket was closed (${code}${reason.length ? `: ${reason.toString()}` : ""})`)),
  );
  ws.on("error", (error: Error) => deliver((to) => to.end(`connection error: ${error.message}`)));
  return {
    listen(handlers) {
      on = handlers;
      for (const event of early.splice(0)) event(handlers);
    },
    write: (message) => ws.send(encodeBody(message), { binary: true }),
    end: () => ws.close(),
  };
}

/** Whether a connection target is a WebSocket URL rather than a socket path. */
export function isUrl(target: string): boolean {
  return target.startsWith("ws://") || target.startsWith("wss://");
}

/** Connect to a Unix socket path or a node's WebSocket face (`ws://`, `wss://`). */
export function openWire(target: string): Promise<Wire> {
  return new Promise((resolve, reject) => {
    if (isUrl(target)) {
      const ws = new WebSocket(target, { maxPayload: MAX_FRAME, perMessageDeflate: false });
      ws.once("error", reject);
      ws.once("open", () => {
        ws.off("error", reject);
        resolve(webSocketWire(ws)); // listening now, before anything else arrives
      });
      return;
    }
    const socket = connect(target);
    socket.once("error", reject);
    socket.once("connect", () => {
      socket.off("error", reject);
      resolve(streamWire(socket));
    });
  });
}
