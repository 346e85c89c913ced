import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { describeCommand, diagnoseLaunch, resolveLaunch } from "../../src/launch";
import { sidecarPython } from "./helpers";

describe("resolveLaunch", () => {
  const env = { PATH: "/usr/bin", HOME: "/home/me", VENV: "/opt/venv" };

  it("defaults to python3 -m sidecar", () => {
    const l = resolveLaunch({}, env, "linux");
    assert.equal(l.command, "python3");
    assert.deepEqual(l.args, ["-m", "sidecar"]);
    assert.equal(l.from, "default");
    assert.equal(l.env.PATH, "/usr/bin");
    assert.equal(resolveLaunch({}, env, "win32").command, "python");
  });

  it("uses pythonPath, expanding ~ and ${env:NAME}", () => {
    assert.equal(resolveLaunch({ pythonPath: "~/.venv/bin/python" }, env, "linux").command, "/home/me/.venv/bin/python");
    const l = resolveLaunch({ pythonPath: "${env:VENV}/bin/python" }, env, "linux");
    assert.equal(l.command, "/opt/venv/bin/python");
    assert.equal(l.from, "llmSidecar.pythonPath");
  });

  it("command wins over pythonPath; env is added to the process environment", () => {
    const l = resolveLaunch({ command: ["llm-sidecar", "serve"], pythonPath: "/x/python", env: { LLM_SIDECAR_HOME: "~/sc" } }, env, "linux");
    assert.equal(l.command, "llm-sidecar");
    assert.deepEqual(l.args, ["serve"]);
    assert.equal(l.from, "llmSidecar.command");
    assert.equal(l.env.LLM_SIDECAR_HOME, "/home/me/sc");
    assert.equal(l.env.PATH, "/usr/bin");
    assert.equal(describeCommand({ command: "/a b/python", args: ["-m", "sidecar"] }), '"/a b/python" -m sidecar');
  });
});

describe("diagnoseLaunch", () => {
  it("a missing program: says so and how to fix it", async () => {
    const why = await diagnoseLaunch(resolveLaunch({ pythonPath: "/nonexistent/python3" }));
    assert.match(why!, /`\/nonexistent\/python3` was not found \(from llmSidecar\.pythonPath\)/);
    assert.match(why!, /pip install llm-sidecar/);
    assert.match(why!, /llmSidecar\.command/);
  });

  it("a Python without the module: names the module", async () => {
    const why = await diagnoseLaunch(resolveLaunch({ command: [sidecarPython(), "-m", "sidecar_not_installed"] }));
    assert.match(why!, /has no module `sidecar_not_installed`/);
    assert.match(why!, /pip install llm-sidecar/);
  });

  it("a command that fails: shows what it printed", async () => {
    const why = await diagnoseLaunch(resolveLaunch({ command: [sidecarPython(), "-c", "import sys; sys.exit('bad config file')"] }));
    assert.match(why!, /exited with code 1: bad config file/);
  });

  it("the real sidecar: nothing to report", async () => {
    const home = mkdtempSync(join(tmpdir(), "sidecar-vscode-launch-"));
    try {
      const launch = resolveLaunch({ command: [sidecarPython(), "-m", "sidecar"], env: { LLM_SIDECAR_HOME: home } });
      assert.equal(await diagnoseLaunch(launch), undefined);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});
