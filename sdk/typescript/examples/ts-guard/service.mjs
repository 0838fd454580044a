// A guard in JavaScript: refuse any bash command that drops a table.
import { defineService, reject } from "aos-skill-sdk";

defineService({
  hooks: {
    "tool.before": (input, output) => {
      const command = String(output.args?.command ?? "");
      if (/drop\s+table/i.test(command)) return reject("blocked: DROP TABLE");
      // nothing returned: the call passes through unchanged
    },
  },
});
