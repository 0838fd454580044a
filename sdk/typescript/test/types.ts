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
      "tool.before": (input, output) => {
        input.call_id satisfies string;
        output.args.command satisfies string;
        output.env?.PATH satisfies string | undefined;
        return output.args.command.includes("x") ? reject("no") : { ...output, cwd: "/tmp" };
      },
      // @ts-expect-error: a bash call's output has no "command" at the top (it is in args)
      "tool.after": (_input, output) => void output.command,
      "compute.after": (input, output) => {
        input.step satisfies number;
        output.tool_calls satisfies Array<Record<string, unknown>>;
      },
      "history.append": (event) => {
        event.seq satisfies number;
        event.fact satisfies Record<string, unknown>;
      },
      "session.assemble": (input) => [{ role: "system", content: `budget ${input.budget satisfies number}` }],
      // @ts-expect-error: a notify hook's handler takes one argument, not a gate's two
      "dispatch.after": (_input: Record<string, unknown>, _output: Record<string, unknown>) => undefined,
    },
  });
  // @ts-expect-error: no such hook
  defineService({ hooks: { "tool.befor": () => undefined } });
  // @ts-expect-error: cli.register is for in-process plugins only
  defineService({ hooks: { "cli.register": () => undefined } });
}
