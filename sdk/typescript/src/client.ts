/**
 * A syscall client for scripts and tools: agent.sock with the agent's token
 * (AOS_SOCKET, AOS_TOKEN, what the kernel hands an agent's bash), or aos.sock
 * as the node's user (token "").
 */
import { type SyscallName, type SyscallParams, type SyscallResults } from "./generated.js";
import { ConnectionClosed, Peer, SyscallError } from "./peer.js";
import { type Message, PROTOCOL_VERSION } from "./protocol.js";
import { SDK } from "./service.js";

export interface ClientOptions {
  /** A Unix socket path or a node's WebSocket face (`ws://HOST:PORT/`); default AOS_SOCKET, else AOS_URL. */
  socket?: string;
  token?: string;
}

export interface KernelEvent {
  topic: string;
  data: unknown;
}

type Listener = (event: KernelEvent) => void;
/** Events kept for a subscription whose result is still on its way to the caller. */
const EARLY_EVENTS = 1000;

export class Client {
  private readonly listeners = new Map<number, Listener>();
  private readonly early = new Map<number, KernelEvent[]>();
  private readonly ended = new Set<number>();

  private constructor(
    private readonly peer: Peer,
    /** Who the kernel says this connection is (`agent:<id>`, `admin`...). */
    readonly principal: string,
  ) {}

  /** Connect and say hello; a refused hello rejects with SyscallError. */
  static async connect(options: ClientOptions = {}): Promise<Client> {
    const socket = options.socket || process.env.AOS_SOCKET || process.env.AOS_URL;
    if (!socket) throw new ConnectionClosed("no socket given and neither AOS_SOCKET nor AOS_URL is set");
    const token = options.token ?? process.env.AOS_TOKEN ?? "";
    let welcomed: (reply: Message) => void;
    const greeting = new Promise<Message>((resolve) => (welcomed = resolve));
    let client: Client | null = null;
    const peer = await Peer.open(socket, (message) => {
      if (message.type === "event") client?.deliver(message.subscription, { topic: message.topic, data: message.data });
      else welcomed(message);
    });
    peer.send({ type: "hello", role: "client", sdk: SDK, protocol: PROTOCOL_VERSION, token });
    const reply = await Promise.race([greeting, peer.closed.then((why) => Promise.reject(new ConnectionClosed(why)))]);
    if (reply.type === "error") {
      peer.close();
      throw new SyscallError(reply.code, reply.message);
    }
    if (reply.type !== "welcome") {
      peer.close();
      throw new SyscallError("protocol", `expected welcome, got ${reply.type}`);
    }
    client = new Client(peer, reply.principal);
    return client;
  }

  /** One syscall, typed by the kernel's table; its result, or SyscallError with the kernel's code. */
  async call<N extends SyscallName>(name: N, params?: SyscallParams[N]): Promise<SyscallResults[N]> {
    const answer = await this.peer.request("syscall", { name, params: (params ?? {}) as Record<string, unknown> });
    return (answer.type === "syscall_result" ? answer.result : undefined) as SyscallResults[N];
  }

  /**
   * Kernel events (`events.subscribe`) as they come: `for await (const event of
   * client.subscribe(["history.append"], sessionId))`. The iteration ends when
   * the connection does; breaking out of it stops listening.
   */
  async *subscribe(topics?: string[], sessionId?: string): AsyncGenerator<KernelEvent> {
    const params: SyscallParams["events.subscribe"] = {};
    if (topics !== undefined) params.topics = topics as SyscallParams["events.subscribe"]["topics"];
    if (sessionId !== undefined) params.session_id = sessionId;
    const queue: KernelEvent[] = [];
    let wake: (() => void) | null = null;
    const answer = await this.call("events.subscribe", params);
    // events that came with the result, before this line ran, are first
    queue.push(...(this.early.get(answer.subscription) ?? []));
    this.early.delete(answer.subscription);
    this.listeners.set(answer.subscription, (event) => {
      queue.push(event);
      wake?.();
    });
    const ended = this.peer.closed.then(() => wake?.());
    try {
      while (true) {
        const next = queue.shift();
        if (next !== undefined) {
          yield next;
          continue;
        }
        if (this.peer.isClosed) return;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = null;
      }
    } finally {
      this.listeners.delete(answer.subscription);
      this.ended.add(answer.subscription); // what the kernel still sends for it is dropped
      void ended;
    }
  }

  private deliver(subscription: number, event: KernelEvent): void {
    const listener = this.listeners.get(subscription);
    if (listener) return listener(event);
    if (this.ended.has(subscription)) return;
    const kept = this.early.get(subscription) ?? [];
    if (kept.length < EARLY_EVENTS) this.early.set(subscription, [...kept, event]);
  }

  close(): void {
    this.peer.close();
  }
}
