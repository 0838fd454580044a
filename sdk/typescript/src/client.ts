/**
 * A syscall client for scripts and tools: agent.sock with the agent's token
 * (AOS_SOCKET, AOS_TOKEN, what the kernel hands an agent's bash), or aos.sock
 * as the node's user (token "").
 */
import { type SyscallName } from "./generated.js";
import { ConnectionClosed, Peer, SyscallError } from "./peer.js";
import { type Message, PROTOCOL_VERSION } from "./protocol.js";
import { SDK } from "./service.js";

export interface ClientOptions {
  socket?: string;
  token?: string;
}

export class Client {
  private constructor(
    private readonly peer: Peer,
    /** Who the kernel says this connection is (`agent:<id>`, `admin`...). */
    readonly principal: string,
  ) {}

  /** Connect and say hello; a refused hello rejects with SyscallError. */
  static async connect(options: ClientOptions = {}): Promise<Client> {
    const socket = options.socket ?? process.env.AOS_SOCKET;
    if (!socket) throw new ConnectionClosed("no socket given and AOS_SOCKET is not set");
    const token = options.token ?? process.env.AOS_TOKEN ?? "";
    let welcomed: (reply: Message) => void;
    const greeting = new Promise<Message>((resolve) => (welcomed = resolve));
    const peer = await Peer.open(socket, (message) => welcomed(message));
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
    return new Client(peer, reply.principal);
  }

  /** One syscall; its result, or SyscallError with the kernel's code. */
  async call(name: SyscallName | (string & {}), params: Record<string, unknown> = {}): Promise<unknown> {
    const answer = await this.peer.request("syscall", { name, params });
    return answer.type === "syscall_result" ? answer.result : undefined;
  }

  close(): void {
    this.peer.close();
  }
}
