// Bundles the extension to dist/extension.js (`vscode` external), or, with
// --tests, the plain-Node unit tests to out/test/unit/*.test.js.
import { build } from "esbuild";
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const common = { bundle: true, platform: "node", target: "node18", format: "cjs", sourcemap: true, logLevel: "warning" };

if (process.argv.includes("--tests")) {
  const dir = join(root, "test", "unit");
  const entryPoints = readdirSync(dir).filter((f) => f.endsWith(".test.ts")).map((f) => join(dir, f));
  // vscode-jsonrpc stays a runtime require: the tests use its node entry point.
  await build({ ...common, entryPoints, outdir: join(root, "out", "test", "unit"), external: ["vscode", "vscode-jsonrpc", "vscode-jsonrpc/*"] });
} else {
  await build({
    ...common,
    entryPoints: [join(root, "src", "extension.ts")],
    outfile: join(root, "dist", "extension.js"),
    external: ["vscode"],
    minify: process.argv.includes("--minify"),
  });
}
