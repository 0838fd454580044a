/**
 * One connection to the kernel: frames out, frames in, requests matched to
 * their answers by id, pings answered.
 */
import { connect, type Socket } from "node:net";

import type { ErrorCode } from "./generated.js";
import { encodeFrame, FrameReader, type Message, ProtocolError } from "./protocol.js";

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
  private readonly reader = new FrameReader();
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closedBecause: string | null = null;
  /** Resolves once the connection ended, with why. */
  readonly closed: Promise<string>;
  private markClosed!: (why: string) => void;
  /** The kernel's `bye`, when it said one. */
  bye: string | null = null;

  private constructor(
    private readonly socket: Socket,
    private readonly incoming: Incoming,
  ) {
    this.closed = new Promise((resolve) => (this.markClosed = resolve));
    socket.on("data", (chunk: Buffer) => this.receive(chunk));
    socket.on("close", () => this.end(this.closedBecause ?? "the kernel closed the connection"));
    socket.on("error", (error) => this.end(`connection error: ${error.message}`));
  }

  /** The kernel's end of an accepted connection (a test's fake kernel). */
  static accept(socket: Socket, incoming: Incoming): Peer {
    return new Peer(socket, incoming);
  }

  /** Connect to a Unix socket. */
  static open(path: string, incoming: Incoming): Promise<Peer> {
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      socket.once("error", reject);
      socket.once("connect", () => {
        socket.off("error", reject);
        resolve(new Peer(socket, incoming));
      });
    });
  }

  get isClosed(): boolean {
    return this.closedBecause !== null;
  }

  send(message: Message): void {
    if (this.isClosed) throw new ConnectionClosed(this.closedBecause ?? "closed");
    this.socket.write(encodeFrame(message));
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
    this.socket.end();
  }

  private receive(chunk: Buffer): void {
    let messages: Message[];
    try {
      messages = this.reader.push(chunk);
    } catch (error) {
      const why = (error as ProtocolError).message;
      try {
        this.send({ type: "error", code: "protocol", message: why });
      } finally {
        this.close(`protocol error: ${why}`);
      }
      return;
    }
    for (const message of messages) this.route(message);
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
