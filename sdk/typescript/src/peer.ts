/**
 * One connection to the kernel: frames out, frames in, requests matched to
 * their answers by id, pings answered.
 */
import type { Socket } from "node:net";

import type { ErrorCode } from "./generated.js";
import type { Message } from "./protocol.js";
import { openWire, streamWire, type Wire } from "./wire.js";

/** A syscall (or method) the other side refused: `code` says why. */
export class SyscallError extends Error {
  override name = "SyscallError";
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

/** The connection ended (or never opened) before the answer came. */
export class ConnectionClosed extends Error {
  override name = "ConnectionClosed";
}

type Answer = Extract<Message, { type: "syscall_result" | "hook_result" | "pong" }>;
type Request = Extract<Message, { type: "syscall" | "hook_call" | "ping" }>;
const ANSWERS: Record<Request["type"], Answer["type"]> = {
  syscall: "syscall_result",
  hook_call: "hook_result",
  ping: "pong",
};

interface Pending {
  answer: Answer["type"];
  resolve: (message: Answer) => void;
  reject: (error: Error) => void;
}

export type Incoming = (message: Message, peer: Peer) => void;

export class Peer {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closedBecause: string | null = null;
  /** Resolves once the connection ended, with why. */
  readonly closed: Promise<string>;
  private markClosed!: (why: string) => void;
  /** The kernel's `bye`, when it said one. */
  bye: string | null = null;

  private constructor(
    private readonly wire: Wire,
    private readonly incoming: Incoming,
  ) {
    this.closed = new Promise((resolve) => (this.markClosed = resolve));
    wire.listen({
      message: (message) => this.route(message),
      invalid: (why) => this.invalid(why),
      end: (why) => this.end(this.closedBecause ?? why),
    });
  }

  /** The kernel's end of an accepted connection (a test's fake kernel). */
  static accept(socket: Socket, incoming: Incoming): Peer {
    return new Peer(streamWire(socket), incoming);
  }

  /** Connect to a Unix socket path or a node's WebSocket face (a `ws://` URL). */
  static async open(target: string, incoming: Incoming): Promise<Peer> {
    return new Peer(await openWire(target), incoming);
  }

  get isClosed(): boolean {
    return this.closedBecause !== null;
  }

  send(message: Message): void {
    if (this.isClosed) throw new ConnectionClosed(this.closedBecause ?? "closed");
    this.wire.write(message);
  }

  /** Send a request with a fresh id; resolve with its answer (an `error` answer rejects). */
  request<T extends Request["type"]>(
    type: T,
    fields: Omit<Extract<Request, { type: T }>, "type" | "id">,
  ): Promise<Answer> {
    const id = this.nextId++;
    return new Promise<Answer>((resolve, reject) => {
      this.pending.set(id, { answer: ANSWERS[type], resolve, reject });
      try {
        this.send({ type, id, ...fields } as Message);
      } catch (error) {
        this.pending.delete(id);
        reject(error as Error);
      }
    });
  }

  /** End the connection (answers still awaited are rejected). */
  close(why = "closed by this side"): void {
    this.end(why);
    this.wire.end();
  }

  private invalid(why: string): void {
    if (this.isClosed) return;
    try {
      this.send({ type: "error", code: "protocol", message: why });
    } finally {
      this.close(`protocol error: ${why}`);
    }
  }

  private route(message: Message): void {
    switch (message.type) {
      case "syscall_result":
      case "hook_result":
      case "pong": {
        const waiting = this.pending.get(message.id);
        if (waiting?.answer === message.type) {
          this.pending.delete(message.id);
          waiting.resolve(message);
        }
        return;
      }
      case "error": {
        if (message.id === undefined || message.id === null) {
          this.close(`the kernel reported ${message.code}: ${message.message}`);
          return;
        }
        const waiting = this.pending.get(message.id);
        if (waiting) {
          this.pending.delete(message.id);
          waiting.reject(new SyscallError(message.code, message.message));
        }
        return;
      }
      case "ping":
        this.send({ type: "pong", id: message.id });
        return;
      case "bye":
        this.bye = message.reason ?? "";
        this.close(message.reason ? `the kernel said bye: ${message.reason}` : "the kernel said bye");
        return;
      default:
        this.incoming(message, this);
    }
  }

  private end(why: string): void {
    if (this.closedBecause !== null) return;
    this.closedBecause = why;
    for (const [id, waiting] of this.pending) {
      this.pending.delete(id);
      waiting.reject(new ConnectionClosed(why));
    }
    this.markClosed(why);
  }
}
