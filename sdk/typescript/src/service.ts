/**
 * defineService: a skill's service face in Node. The kernel starts the program
 * with AOS_SERVICE_SOCKET and AOS_SKILL set; the service says hello with its
 * hooks and methods, then answers hook calls until the kernel hangs up. Run
 * anywhere with AOS_URL=ws://HOST:PORT/, AOS_SKILL and AOS_TOKEN (`aos service
 * token NAME`), the same program is a remote service on the node's WebSocket face.
 */
import {
  type ErrorCode,
  type FailurePolicy,
  type HookAnswer,
  type HookEvent,
  type HookInput,
  HOOKS,
  type HookKind,
  type HookName,
  type HookOutput,
  type SyscallName,
  type SyscallParams,
  type SyscallResults,
} from "./generated.js";
import { AsyncLocalStorage } from "node:async_hooks";
import { Peer, SyscallError } from "./peer.js";
import { type HookDecl, type Message, PROTOCOL_VERSION } from "./protocol.js";
import { isUrl } from "./wire.js";

export const SDK = "aos-sdk-typescript/0.1.0";

type Input = Readonly<Record<string, unknown>>;
type Output = Record<string, unknown>;
/** A gate's refusal: the kernel turns it into the operation's visible result. */
export interface Reject {
  verdict: "reject";
  reason: string;
}
export const reject = (reason: string): Reject => ({ verdict: "reject", reason });

type Awaitable<T> = T | Promise<T>;
/** A gate: the new output, `reject(reason)`, or nothing (the output passes through unchanged). */
export type GateHandler<I = Input, O = Output> = (input: Readonly<I>, output: O) => Awaitable<O | Reject | undefined | void>;
export type NotifyHandler<E = Input> = (event: Readonly<E>) => Awaitable<void>;
/** A provider: its answer, or nothing (not providing: the next provider answers). */
export type ProvideHandler<I = Input, R = unknown> = (input: Readonly<I>) => Awaitable<R | undefined | null>;
export type Handler = GateHandler | NotifyHandler | ProvideHandler;
/** The handler hook `N` takes, typed by its kind and its arguments' shapes (the kernel's HookSpec.schema). */
export type HandlerFor<N extends HookName> = N extends keyof HookInput & keyof HookOutput
  ? GateHandler<HookInput[N], HookOutput[N]>
  : N extends keyof HookEvent
    ? NotifyHandler<HookEvent[N]>
    : N extends keyof HookInput & keyof HookAnswer
      ? ProvideHandler<HookInput[N], HookAnswer[N]>
      : never;
/** What a service may implement: hooks other than `register` ones, each typed by its kind and shapes. */
export type ServiceHooks = {
  [N in HookName as (typeof HOOKS)[N] extends "register" ? never : N]?: HandlerFor<N> | HookOptions<HandlerFor<N>>;
};

export interface HookOptions<F = Handler> {
  fn: F;
  priority?: "first" | "normal" | "last";
  /** Seconds the kernel waits for this implementation (SKILL.md's setting wins). */
  timeout?: number;
  failure?: FailurePolicy;
}

/** A method's refusal, with the syscall error code the caller gets. */
export class MethodError extends Error {
  override name = "MethodError";
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export type Method = (params: Input, caller: Input) => Awaitable<unknown>;

export interface ServiceSpec {
  hooks?: ServiceHooks;
  methods?: Record<string, Method>;
  /** Runs once connected (it may call syscalls). */
  start?: () => Awaitable<void>;
}

/** A definition the SDK refuses before connecting (a misspelt hook...). */
export class ServiceDefinitionError extends Error {
  override name = "ServiceDefinitionError";
}

let current: Peer | null = null;

/** Lines on stderr reach the node's log (`aos logs --service NAME`). */
export const log = {
  info: (message: string) => process.stderr.write(`info: ${message}\n`),
  warning: (message: string) => process.stderr.write(`warning: ${message}\n`),
  error: (message: string) => process.stderr.write(`error: ${message}\n`),
};

/** Call the kernel from inside a running service (as `service:<skill>`), typed by its table. */
export async function syscall<N extends SyscallName>(name: N, params?: SyscallParams[N]): Promise<SyscallResults[N]> {
  if (current === null) throw new Error("syscall() works inside a running service");
  const frame: { name: string; params: Record<string, unknown>; traceparent?: string } = {
    name,
    params: (params ?? {}) as Record<string, unknown>,
  };
  const context = tracing.getStore();
  if (context) frame.traceparent = context; // made while handling a call: the kernel's span joins it
  const answer = await current.request("syscall", frame);
  return (answer.type === "syscall_result" ? answer.result : undefined) as SyscallResults[N];
}

/** Leave on purpose: say `bye` and close; the process exits 0, a clean stop. */
export function leave(reason = ""): void {
  if (current === null) throw new Error("leave() works inside a running service");
  current.send({ type: "bye", reason });
  current.close(reason ? `left: ${reason}` : "left");
}

interface Built {
  decls: HookDecl[];
  handlers: Map<string, { kind: HookKind; fn: Handler }>;
  methods: Map<string, Method>;
}

/** Check a spec against the kernel's hook table; what it declares in the hello. */
export function build(spec: ServiceSpec): Built {
  const decls: HookDecl[] = [];
  const handlers = new Map<string, { kind: HookKind; fn: Handler }>();
  for (const [name, value] of Object.entries(spec.hooks ?? {})) {
    const kind = (HOOKS as Record<string, HookKind>)[name];
    if (kind === undefined) {
      throw new ServiceDefinitionError(`no hook named ${JSON.stringify(name)} (hooks: ${Object.keys(HOOKS).join(", ")})`);
    }
    if (kind === "register") {
      throw new ServiceDefinitionError(`${name} is a register hook: only in-process plugins implement it`);
    }
    // the kernel's table checked the name; the handler's shapes are the kernel's promise
    const options = (typeof value === "function" ? { fn: value } : value) as HookOptions;
    if (typeof options.fn !== "function") throw new ServiceDefinitionError(`hook ${name}: fn is not a function`);
    decls.push({ name, kind, priority: options.priority, timeout: options.timeout, failure: options.failure });
    handlers.set(name, { kind, fn: options.fn });
  }
  const methods = new Map<string, Method>();
  for (const [name, fn] of Object.entries(spec.methods ?? {})) {
    if (typeof fn !== "function") throw new ServiceDefinitionError(`method ${name} is not a function`);
    methods.set(name, fn);
  }
  return { decls, handlers, methods };
}

const tracing = new AsyncLocalStorage<string | undefined>();

/**
 * The W3C trace context of the hook call or method being handled, when the node
 * traces (OpenTelemetry): start your own spans as its children. Syscalls made
 * meanwhile carry it.
 */
export function traceparent(): string | undefined {
  return tracing.getStore();
}

/** Run one hook call or method; the hook_result to send. */
export async function answer(built: Built, call: Extract<Message, { type: "hook_call" }>): Promise<Message> {
  return tracing.run(call.traceparent ?? undefined, () => handle(built, call));
}

async function handle(built: Built, call: Extract<Message, { type: "hook_call" }>): Promise<Message> {
  const id = call.id;
  try {
    if (call.hook.startsWith("method:")) {
      const method = built.methods.get(call.hook.slice("method:".length));
      if (method === undefined) return { type: "hook_result", id, error: `no method ${call.hook}`, code: "unknown" };
      const args = call.args as { params?: Input; caller?: Input };
      return { type: "hook_result", id, result: (await method(args.params ?? {}, args.caller ?? {})) ?? null };
    }
    const handler = built.handlers.get(call.hook);
    if (handler === undefined) return { type: "hook_result", id, error: `no implementation of ${call.hook}`, code: "unknown" };
    const args = call.args as { input?: Input; output?: Output; event?: Input };
    if (handler.kind === "gate") {
      const result = await (handler.fn as GateHandler)(args.input ?? {}, args.output ?? {});
      return { type: "hook_result", id, result: result ?? args.output ?? null };
    }
    if (handler.kind === "notify") {
      await (handler.fn as NotifyHandler)(args.event ?? {});
      return { type: "hook_result", id, result: null };
    }
    return { type: "hook_result", id, result: (await (handler.fn as ProvideHandler)(args.input ?? {})) ?? null };
  } catch (error) {
    if (error instanceof MethodError) return { type: "hook_result", id, error: error.message, code: error.code };
    const failure = error as Error;
    return { type: "hook_result", id, error: `${failure.name}: ${failure.message}`, code: "unavailable" };
  }
}

/** Connect, say hello, serve until the kernel hangs up; the exit code. */
export async function serve(spec: ServiceSpec): Promise<number> {
  const target = process.env.AOS_SERVICE_SOCKET || process.env.AOS_URL;
  const skill = process.env.AOS_SKILL;
  if (!target || !skill) {
    process.stderr.write(
      "aos service: AOS_SKILL and AOS_SERVICE_SOCKET are not set: the kernel starts services " +
        "(a remote service sets AOS_SKILL, AOS_URL=ws://... and AOS_TOKEN)\n",
    );
    return 2;
  }
  const built = build(spec);
  let welcomed: (reply: Message) => void;
  const greeting = new Promise<Message>((resolve) => (welcomed = resolve));
  let greeted = false;
  let peer: Peer;
  try {
    peer = await Peer.open(target, (message, self) => {
      if (!greeted) {
        greeted = true;
        welcomed(message);
      } else if (message.type === "hook_call") {
        void answer(built, message).then((reply) => !self.isClosed && self.send(reply));
      } else {
        self.send({ type: "error", code: "protocol", message: `unexpected ${message.type} message` });
      }
    });
  } catch (error) {
    process.stderr.write(`aos service ${skill}: cannot reach the kernel at ${target}: ${(error as Error).message}\n`);
    return 1;
  }
  peer.send({
    type: "hello", role: "service", sdk: SDK, protocol: PROTOCOL_VERSION, skill,
    hooks: built.decls, methods: [...built.methods.keys()],
    token: isUrl(target) ? process.env.AOS_TOKEN : undefined,
  });
  const reply = await Promise.race([greeting, peer.closed.then((why) => ({ type: "bye", reason: why }) as Message)]);
  if (reply.type !== "welcome") {
    const detail = reply.type === "error" ? `${reply.code}: ${reply.message}` : reply.type === "bye" ? reply.reason : reply.type;
    process.stderr.write(`aos service ${skill}: the kernel refused the hello: ${detail}\n`);
    peer.close();
    return 1;
  }
  current = peer;
  const stop = () => peer.close("SIGTERM");
  process.once("SIGTERM", stop);
  try {
    if (spec.start) await spec.start();
    await peer.closed;
  } finally {
    current = null;
    process.off("SIGTERM", stop);
  }
  return 0;
}

/**
 * Define the service and, when the kernel started this process, run it: the
 * process exits 0 when the kernel closes the connection (or on SIGTERM), 1
 * when the hello is refused, 2 when not started by the kernel.
 */
export function defineService(spec: ServiceSpec): Promise<number> {
  build(spec); // a misspelt hook fails now, before anything connects
  const running = serve(spec);
  running.then(
    (code) => process.exit(code),
    (error: Error) => {
      process.stderr.write(`aos service: ${error.stack ?? error.message}\n`);
      process.exit(1);
    },
  );
  return running;
}

export { SyscallError };
