// Compiled (not run) by `npm test`: the syscall client is typed by the kernel's table.
import { Client, defineService, reject, syscall } from "../src/index.js";

export async function typed(client: Client): Promise<void> {
  const info = await client.call("agent.get", { id: "agt_1" });
  info.agent.name satisfies string;
  info.effective.scopes satisfies string[];
  const history = await client.call("session.history", { id: "ses_1", after: 3 });
  for (const entry of history) {
    if (entry.fact.kind === "message.user") entry.fact.text satisfies string;
  }
  // @ts-expect-error: agent.get has no param "idd"
  await client.call("agent.get", { idd: "agt_1" });
  // @ts-expect-error: there is no such syscall
  await client.call("agent.gett", { id: "agt_1" });
  const status = await syscall("kernel.status");
  status.version satisfies string;
}

export function hooks(): void {
  defineService({
    hooks: {
      "tool.before": (_input, output) => (String(output.command).includes("x") ? reject("no") : output),
      "history.append": (event) => void event.seq,
      "session.assemble": () => [{ role: "system", content: "hi" }],
      // @ts-expect-error: a notify hook's handler takes one argument, not a gate's two
      "dispatch.after": (_input: Record<string, unknown>, _output: Record<string, unknown>) => undefined,
    },
  });
  // @ts-expect-error: no such hook
  defineService({ hooks: { "tool.befor": () => undefined } });
  // @ts-expect-error: cli.register is for in-process plugins only
  defineService({ hooks: { "cli.register": () => undefined } });
}
