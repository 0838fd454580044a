// dist/cjs holds CommonJS while the package is "type": "module": say so there.
import { writeFileSync } from "node:fs";
writeFileSync(new URL("../dist/cjs/package.json", import.meta.url), '{"type": "commonjs"}\n');
