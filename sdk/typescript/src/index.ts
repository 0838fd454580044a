export { Client, type ClientOptions, type KernelEvent } from "./client.js";
export type * from "./generated.js";
export { HOOKS, SYSCALLS } from "./generated.js";
export { ConnectionClosed, Peer, SyscallError } from "./peer.js";
export {
  decodeBody,
  encodeBody,
  encodeFrame,
  FrameReader,
  type HookDecl,
  MAX_FRAME,
  type Message,
  PROTOCOL_VERSION,
  ProtocolError,
} from "./protocol.js";
export {
  defineService,
  type GateHandler,
  type HandlerFor,
  type HookOptions,
  leave,
  log,
  MethodError,
  type NotifyHandler,
  type ProvideHandler,
  reject,
  type Reject,
  SDK,
  serve,
  type ServiceHooks,
  type ServiceSpec,
  ServiceDefinitionError,
  syscall,
  traceparent,
} from "./service.js";
export { FakeKernel, type SyscallAnswer } from "./testing.js";
export { isUrl, openWire, streamWire, type Wire, type WireEvents, webSocketWire } from "./wire.js";
