/**
 * A fake kernel for a service's unit tests: it listens where AOS_SERVICE_SOCKET
 * says, welcomes the service's hello, sends it hook calls and method calls as
 * the kernel would, and answers its syscalls with a function of the test's.
 * (For a real daemon, see docs/testing.md.)
 */
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { HOOKS, type HookName } from "./generated.js";
import { Peer, SyscallError } from "./peer.js";
import { type Message } from "./protocol.js";

type Hello = Extract<Message, { type: "hello" }>;
export type SyscallAnswer = (name: string, params: Record<string, unknown>) => unknown;

export class FakeKernel {
  /** Resolves with the service's hello (the fake kernel has welcomed it). */
  readonly hello: Promise<Hello>;
  private peer: Peer | null = null;
  private gotHello!: (hello: Hello) => void;

  private constructor(
    private readonly server: Server,
    /** Where the service connects: set it as AOS_SERVICE_SOCKET. */
    readonly socketPath: string,
    private readonly syscalls: SyscallAnswer,
  ) {
    this.hello = new Promise((resolve) => (this.gotHello = resolve));
    server.on("connection", (socket) => {
      this.peer = Peer.accept(socket, (message, peer) => this.receive(message, peer));
    });
  }

  /** Listen on a fresh socket; `syscalls` answers the service's syscalls (throw SyscallError to refuse). */
  static start(syscalls: SyscallAnswer = (name) => { throw new SyscallError("unknown", `unknown syscall ${name}`); }): Promise<FakeKernel> {
    const path = join(tmpdir(), `aos-fake-${randomBytes(6).toString("hex")}.sock`);
    const server = createServer();
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => resolve(new FakeKernel(server, path, syscalls)));
    });
  }

  /** The environment the kernel gives a service of `skill`. */
  env(skill: string): Record<string, string> {
    return { AOS_SERVICE_SOCKET: this.socketPath, AOS_SKILL: skill };
  }

  /** Call a gate hook: the service's output (a Reject object when it refused). */
  gate(hook: HookName, input: Record<string, unknown>, output: Record<string, unknown>): Promise<unknown> {
    return this.call(hook, { input, output });
  }

  notify(hook: HookName, event: Record<string, unknown>): Promise<unknown> {
    return this.call(hook, { event });
  }

  provide(hook: HookName, input: Record<string, unknown>): Promise<unknown> {
    return this.call(hook, { input });
  }

  /** A `skill.call` of one of the service's methods. */
  method(name: string, params: Record<string, unknown>, caller: Record<string, unknown> = { principal: "admin" }): Promise<unknown> {
    return this.call(`method:${name}`, { params, caller });
  }

  /** Say bye and stop listening: a service run by `serve` then returns 0. */
  close(): void {
    if (this.peer && !this.peer.isClosed) {
      this.peer.send({ type: "bye", reason: "the fake kernel is done" });
      this.peer.close();
    }
    this.server.close();
  }

  private async call(hook: string, args: Record<string, unknown>): Promise<unknown> {
    await this.hello;
    if (this.peer === null) throw new Error("no service connected");
    const kind = (HOOKS as Record<string, string>)[hook];
    if (kind === undefined && !hook.startsWith("method:")) throw new Error(`no hook named ${hook}`);
    const answer = await this.peer.request("hook_call", { hook, args, timeout: 5 });
    if (answer.type !== "hook_result") throw new Error(`expected hook_result, got ${answer.type}`);
    if (answer.error) throw new SyscallError(answer.code ?? "unavailable", answer.error);
    return answer.result;
  }

  private receive(message: Message, peer: Peer): void {
    if (message.type === "hello") {
      peer.send({ type: "welcome", node: "fake", version: "0.0.0", principal: `service:${message.skill}` });
      this.gotHello(message);
    } else if (message.type === "syscall") {
      Promise.resolve()
        .then(() => this.syscalls(message.name, message.params ?? {}))
        .then(
          (result) => peer.send({ type: "syscall_result", id: message.id, result: result ?? null }),
          (error: Error) => {
            const code = error instanceof SyscallError ? error.code : "unavailable";
            const text = error instanceof SyscallError ? error.message.replace(`${code}: `, "") : error.message;
            peer.send({ type: "error", code, message: text, id: message.id });
          },
        );
    }
  }
}
