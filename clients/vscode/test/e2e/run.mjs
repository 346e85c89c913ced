#!/usr/bin/env node
// End-to-end test of the packaged extension in a real VS Code: code-server
// 4.100.3 with the .vsix installed, driven by Debian's headless Chromium
// through playwright-core, the sidecar pointed at the fake provider.
//
//   npm run package && npm run e2e
//
// Environment (all optional):
//   LLM_SIDECAR_PYTHON  the Python that has llm-sidecar (default: <repo>/.venv/bin/python)
//   CODE_SERVER         code-server binary (default: what scripts/setup-e2e.sh installs)
//   CHROMIUM            default /usr/bin/chromium
//   VSIX                default dist/llm-sidecar.vsix
//   E2E_OUT             where screenshots and logs go (default test-results/e2e)
//   E2E_KEEP=1          keep the temporary directory
//
// Every process the test starts (code-server with its extension hosts and
// sidecars, the fake) runs in its own process group, killed by id at the end,
// on failure too.
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, openSync } from "node:fs";
import { createServer } from "node:net";
import { homedir, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const extRoot = resolve(here, "..", "..");
const repoRoot = resolve(extRoot, "..", "..");

const MODEL = "claude-sonnet-4-5";
const K1 = "sk-ant-api03-e2e-vscode-key-one-1111";
const K2 = "sk-ant-api03-e2e-vscode-key-two-2222";

const python = process.env.LLM_SIDECAR_PYTHON || join(repoRoot, ".venv", "bin", "python");
const e2eHome = process.env.LLM_SIDECAR_E2E_HOME || join(homedir(), ".cache", "llm-sidecar-e2e");
const codeServer = process.env.CODE_SERVER || join(e2eHome, "code-server-4.100.3", "node_modules", ".bin", "code-server");
const chromium = process.env.CHROMIUM || "/usr/bin/chromium";
const vsix = resolve(process.env.VSIX || join(extRoot, "dist", "llm-sidecar.vsix"));
const outDir = resolve(process.env.E2E_OUT || join(extRoot, "test-results", "e2e"));

const runId = randomBytes(6).toString("hex");
const work = mkdtempSync(join(tmpdir(), "llm-sidecar-vscode-e2e-"));
const started = []; // {name, pid, group}
let browser;
let page;
const results = [];

function log(...args) {
  console.log(`[e2e ${(process.uptime()).toFixed(1)}s ${new Date().toLocaleTimeString()}]`, ...args);
}

function fail(message) {
  throw new Error(message);
}

for (const [what, path] of [["python (LLM_SIDECAR_PYTHON)", python], ["code-server (CODE_SERVER; run scripts/setup-e2e.sh)", codeServer], ["chromium (CHROMIUM; run scripts/setup-e2e.sh)", chromium], ["the .vsix (VSIX; run npm run package)", vsix]]) {
  if (!existsSync(path)) {
    console.error(`e2e: ${what} not found at ${path}`);
    process.exit(2);
  }
}

/** The environment of everything we start: no provider keys of the developer's, and a marker. */
function cleanEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/(_API_KEYS?|_OAUTH_TOKEN|_BASE_URL|_AUTH_TOKEN)$/.test(k)) continue;
    if (k.startsWith("VSCODE_") || k === "LLM_SIDECAR_HOME") continue;
    env[k] = v;
  }
  return { ...env, LLM_SIDECAR_E2E_RUN: runId, ...extra };
}

function spawnGroup(name, command, args, options = {}) {
  const child = spawn(command, args, { ...options, detached: true });
  started.push({ name, pid: child.pid, child });
  return child;
}

function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, fn, timeoutMs = 30000, intervalMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) fail(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (${last.message})` : ""}`);
    await sleep(intervalMs);
  }
}

async function check(name, fn) {
  // E2E_ONLY=regex runs only the checks it matches (while working on one); CI runs all.
  if (process.env.E2E_ONLY && !new RegExp(process.env.E2E_ONLY).test(name)) {
    console.log(`ok - ${name} # SKIP E2E_ONLY`);
    return;
  }
  const t0 = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    console.log(`ok - ${name} (${Date.now() - t0} ms)`);
  } catch (err) {
    results.push({ name, ok: false, err });
    console.log(`not ok - ${name}: ${err.message}`);
    throw err;
  }
}

async function startFake() {
  const child = spawnGroup("fake", python, ["-m", "sidecar.fake", "--host", "127.0.0.2", "--port", "0", "--key", K1, "--key", K2], {
    env: cleanEnv(),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (c) => (stderr += c));
  const line = await Promise.race([
    new Promise((r) => createInterface({ input: child.stdout }).once("line", r)),
    new Promise((_, reject) => child.once("exit", (code) => reject(new Error(`fake exited ${code}: ${stderr}`)))),
    sleep(20000).then(() => fail("the fake did not print its url")),
  ]);
  const { url } = JSON.parse(line);
  return {
    url,
    async control(path, body) {
      const res = await fetch(url + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body ?? {}) });
      if (!res.ok) fail(`fake ${path}: ${res.status} ${await res.text()}`);
    },
  };
}

async function cleanup() {
  if (browser) await browser.close().catch(() => undefined);
  for (const p of started.reverse()) {
    try {
      process.kill(-p.pid, "SIGTERM");
    } catch {
      // Already gone.
    }
  }
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && started.some((p) => groupAlive(p.pid))) await sleep(100);
  for (const p of started) {
    if (groupAlive(p.pid)) {
      log(`${p.name} (group ${p.pid}) still alive: SIGKILL`);
      try {
        process.kill(-p.pid, "SIGKILL");
      } catch {
        // Gone.
      }
    }
  }
  // Anything that left our process groups (setsid) still carries our marker.
  for (const pid of markedProcesses()) {
    log(`process ${pid} outlived its group: SIGKILL`);
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Gone.
    }
  }
  if (process.env.E2E_KEEP) log(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}

function groupAlive(pgid) {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

function markedProcesses() {
  const pids = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, "latin1").includes(`LLM_SIDECAR_E2E_RUN=${runId}`)) pids.push(Number(entry));
    } catch {
      // Gone, or not ours to read.
    }
  }
  return pids;
}

async function main() {
  mkdirSync(outDir, { recursive: true });
  const userData = join(work, "user-data");
  const extensions = join(work, "extensions");
  const folder = join(work, "workspace");
  const sidecarHome = join(work, "sidecar-home");
  for (const d of [userData, join(userData, "User"), extensions, folder, sidecarHome]) mkdirSync(d, { recursive: true });
  writeFileSync(join(folder, "notes.md"), "# A workspace for the LLM Sidecar e2e test\nconst answer = 41;\nconsole.log(answer);\n");
  writeFileSync(join(folder, "helper.js"), "export function helper(x) {\n  return x + 1;\n}\n");

  const fake = await startFake();
  log(`fake provider at ${fake.url}`);

  const install = spawnSync(codeServer, ["--user-data-dir", userData, "--extensions-dir", extensions, "--install-extension", vsix], {
    env: cleanEnv(),
    encoding: "utf8",
    timeout: 120000,
  });
  if (install.status !== 0) fail(`installing the .vsix failed: ${install.stdout}\n${install.stderr}`);
  log(install.stdout.trim().split("\n").pop());

  writeFileSync(
    join(userData, "User", "settings.json"),
    JSON.stringify(
      {
        "workbench.startupEditor": "none",
        "workbench.tips.enabled": false,
        "extensions.autoCheckUpdates": false,
        "extensions.autoUpdate": false,
        "telemetry.telemetryLevel": "off",
        "security.workspace.trust.enabled": false,
        "workbench.enableExperiments": false,
        "chat.commandCenter.enabled": false,
        "window.commandCenter": false,
        "llmSidecar.command": [python, "-m", "sidecar"],
        "llmSidecar.env": {
          LLM_SIDECAR_HOME: sidecarHome,
          ANTHROPIC_API_KEYS: `${K1},${K2}`,
          ANTHROPIC_BASE_URL: fake.url,
          // Log In against the fake's OAuth server.
          LLM_SIDECAR_ANTHROPIC_AUTHORIZE_URL: `${fake.url}/oauth/authorize`,
          LLM_SIDECAR_ANTHROPIC_TOKEN_URL: `${fake.url}/v1/oauth/token`,
          LLM_SIDECAR_ANTHROPIC_MANUAL_REDIRECT_URL: `${fake.url}/oauth/code/callback`,
        },
        "llmSidecar.provider": "anthropic",
        "llmSidecar.model": MODEL,
      },
      null,
      2,
    ),
  );

  const port = await freePort();
  const csLog = join(outDir, "code-server.log");
  const logFd = openSync(csLog, "w");
  spawnGroup(
    "code-server",
    codeServer,
    [
      "--auth", "none",
      "--bind-addr", `127.0.0.1:${port}`,
      "--config", join(work, "code-server.yaml"),
      "--user-data-dir", userData,
      "--extensions-dir", extensions,
      "--disable-telemetry",
      "--disable-update-check",
      "--disable-workspace-trust",
      "--disable-getting-started-override",
      folder,
    ],
    { env: cleanEnv(), stdio: ["ignore", logFd, logFd] },
  );
  const base = `http://127.0.0.1:${port}`;
  await waitFor("code-server /healthz", async () => (await fetch(`${base}/healthz`)).ok, 60000, 200);
  log(`code-server at ${base} (log: ${csLog})`);

  const { chromium: pwChromium } = await import("playwright-core");
  browser = await pwChromium.launch({
    executablePath: chromium,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  // Clipboard permissions: Copy goes through the browser's clipboard in code-server.
  page = await browser.newPage({ viewport: { width: 1280, height: 800 }, permissions: ["clipboard-read", "clipboard-write"] });
  page.on("pageerror", (err) => log(`page error: ${err.message}`));
  await page.goto(`${base}/?folder=${encodeURIComponent(folder)}`);
  await page.waitForSelector(".monaco-workbench", { timeout: 60000 });

  const statusItem = page.locator(".statusbar-item", { hasText: "🔑" }).first();
  const statusText = async () => ((await statusItem.count()) ? (await statusItem.innerText()).trim() : "");
  // Every text the status bar item takes, as it changes.
  await page.evaluate(() => {
    window.__sidecarStatus = [];
    const seen = () => {
      for (const el of document.querySelectorAll(".statusbar-item")) {
        const t = el.textContent?.trim() ?? "";
        if (t.includes("🔑") && window.__sidecarStatus.at(-1) !== t) window.__sidecarStatus.push(t);
      }
    };
    new MutationObserver(seen).observe(document.body, { subtree: true, childList: true, characterData: true });
    seen();
  });
  const statusHistory = () => page.evaluate(() => window.__sidecarStatus);

  const editorText = async () => {
    const lines = page.locator(".editor-group-container.active .monaco-editor .view-lines").first();
    if (!(await lines.count())) return "";
    return (await lines.innerText()).replace(/\u00a0/g, " ");
  };

  async function runCommand(title) {
    await page.locator(".monaco-workbench").click({ position: { x: 640, y: 300 } });
    await page.keyboard.press("F1");
    const input = page.locator(".quick-input-widget input");
    await input.waitFor({ state: "visible" });
    await input.fill(`>${title}`);
    await page.locator(".quick-input-list .monaco-list-row", { hasText: title }).first().waitFor({ timeout: 15000 });
    await page.keyboard.press("Enter");
  }

  /** Wait until `locator` has stopped moving and is fully opaque (a toast's entrance animation is over). */
  async function settled(locator) {
    let last = "";
    await waitFor("the element to settle", async () => {
      const now = await locator.evaluate((el) => {
        const r = el.getBoundingClientRect();
        let opacity = 1;
        for (let e = el; e; e = e.parentElement) opacity *= Number(getComputedStyle(e).opacity);
        return JSON.stringify([Math.round(r.x), Math.round(r.y), Math.round(r.width), Math.round(r.height), opacity]);
      });
      const still = now === last && JSON.parse(now)[4] === 1;
      last = now;
      return still;
    }, 10000, 150);
  }

  /** The chat webview's document: the frame (nested in VS Code's webview iframes) that has #turns. */
  async function chatFrame() {
    return waitFor("the chat webview", async () => {
      for (const f of page.frames()) {
        if (await f.locator("#turns").count().catch(() => 0)) return f;
      }
      return undefined;
    }, 30000, 200);
  }
  const turnsText = async (frame) => (await frame.locator("#turns").innerText()).replace(/\u00a0/g, " ");
  const footers = async (frame) => frame.locator(".turn .footer").allInnerTexts();

  async function askInChat(frame, prompt) {
    const input = frame.locator("#input");
    await input.click();
    await input.fill(prompt);
    await input.press("Enter");
  }

  async function openFile(name) {
    await page.locator(".monaco-workbench").click({ position: { x: 640, y: 300 } });
    await page.keyboard.press("Control+P");
    await page.locator(".quick-input-widget input").fill(name);
    // Click the row itself: Enter could still pick the list's previous first row.
    await page.locator(".quick-input-list .monaco-list-row", { hasText: name }).first().click({ timeout: 15000 });
    await page.locator(".editor-group-container.active .tab.active", { hasText: name }).waitFor({ timeout: 15000 });
  }
  const openNotes = () => openFile("notes.md");

  await check("the status bar shows 🔑 1/2", async () => {
    await waitFor("the 🔑 status bar item", async () => (await statusText()) === "🔑 1/2", 60000);
  });

  let chat;
  await check("the chat: the selection as a chip, a streamed Markdown answer with the key and cost", async () => {
    await openNotes();
    await runCommand("LLM Sidecar: Open Chat");
    chat = await chatFrame();
    // A taller panel, for the chat to show a question and its answer (and the screenshots
    // to): drag the sash above it up, the editor keeping its top lines and the point
    // runCommand clicks (y=300).
    const panel = await page.locator(".part.panel").first().boundingBox();
    if (panel && panel.y > 420) {
      await page.mouse.move(panel.x + panel.width / 2, panel.y - 1);
      await page.mouse.down();
      await page.mouse.move(panel.x + panel.width / 2, 400, { steps: 8 });
      await page.mouse.up();
    }
    // As a user selects: click into line 2, then extend the selection over line 3.
    await page.locator(".editor-group-container.active .view-line", { hasText: "const answer" }).first().click();
    await page.keyboard.press("Home");
    await page.keyboard.press("Shift+ArrowDown");
    await page.keyboard.press("Shift+End");
    await waitFor("the context chip notes.md:2-3", async () => (await chat.locator("#context .chip").innerText().catch(() => "")).includes("notes.md:2-3"), 15000);
    const reply = "Use **console.log** once:\n\n```js\nconsole.log(42);\n```\n";
    await fake.control("/_fake/script", { key: K1, steps: [{ kind: "reply", content: [{ type: "text", text: reply }], chunk: 4, interval: 0.08 }] });
    await askInChat(chat, "Simplify this");
    const partial = [];
    await waitFor("the answer and its footer", async () => {
      const text = await turnsText(chat);
      if (text.includes("Use") && !text.includes("console.log(42)")) partial.push(text);
      return (await chat.locator(".turn .footer").count()) > 0;
    }, 30000, 50);
    if (partial.length === 0) fail("never saw a partial answer: the text did not stream");
    if (!(await chat.locator(".turn .answer strong", { hasText: "console.log" }).count())) fail("the Markdown was not rendered");
    const [footer] = await footers(chat);
    if (!/key sk-ant-api03-…1111/.test(footer) || !/\$\d/.test(footer)) fail(`the footer lacks the key or the cost: ${footer}`);
    if (!(await chat.locator(".turn .chip", { hasText: "notes.md:2-3" }).count())) fail("the question does not show its context");
    const sent = (await (await fetch(`${fake.url}/_fake/log`)).json()).requests.at(-1);
    const content = JSON.stringify(sent.body.messages);
    if (!content.includes("const answer = 41;")) fail(`the selection was not sent: ${content}`);
    await page.screenshot({ path: join(outDir, "chat.png") });
  });

  await check("Replace Selection goes through a diff the user accepts", async () => {
    await chat.locator(".code-action[data-action=replace]").first().click();
    const toast = page.locator(".notification-toast", { hasText: "apply the proposed change" }).first();
    await toast.waitFor({ state: "visible", timeout: 15000 });
    await page.locator(".editor-group-container.active .tab.active", { hasText: "proposed change" }).waitFor({ timeout: 10000 });
    await page.screenshot({ path: join(outDir, "diff.png") });
    await toast.getByRole("button", { name: "Apply" }).click();
    await waitFor("notes.md with the code block in place of lines 2-3", async () => {
      const text = await editorText();
      return text.includes("console.log(42);") && !text.includes("const answer = 41;");
    }, 15000);
    // The diff's left side is the file itself, so the text above shows while the diff
    // is still open: the diff must close and leave the file in front.
    await waitFor("the diff closed after Apply", async () => (await page.locator(".tab", { hasText: "proposed change" }).count()) === 0, 10000);
  });

  await check("Insert at Cursor puts the code at the cursor; Copy puts it on the clipboard", async () => {
    const count = async () => (await editorText()).split("console.log(42);").length - 1;
    const before = await count();
    // The cursor at the end of line 1, on a new line of its own.
    await page.locator(".editor-group-container.active .view-line", { hasText: "A workspace" }).first().click();
    await page.keyboard.press("End");
    await page.keyboard.press("Enter");
    await chat.locator(".turn").first().locator(".code-action[data-action=insert]").first().click();
    await waitFor("a second console.log(42); in notes.md", async () => (await count()) === before + 1, 15000);
    const lines = (await editorText()).split("\n");
    if (lines[1] !== "console.log(42);") fail(`the code is not at the cursor (line 2): ${JSON.stringify(lines)}`);
    await page.keyboard.press("Control+Z");
    await waitFor("one undo takes the insertion back", async () => (await count()) === before, 10000);
    await page.evaluate(() => navigator.clipboard.writeText("nothing yet"));
    await chat.locator(".turn").first().locator(".code-action[data-action=copy]").first().click();
    await waitFor("the code block on the clipboard", async () => (await page.evaluate(() => navigator.clipboard.readText())) === "console.log(42);\n", 10000);
  });

  await check("#file attaches another open file as a chip; a follow-up sends the conversation so far", async () => {
    await openFile("helper.js");
    await openNotes();
    // As Copilot Chat's: "#file" and a space in the question opens a picker of open files.
    const input = chat.locator("#input");
    await input.click();
    await input.pressSequentially("#file ");
    const row = page.locator(".quick-input-widget", { hasText: "attach an open file" }).locator(".monaco-list-row", { hasText: "helper.js" }).first();
    await row.waitFor({ timeout: 15000 });
    await row.click();
    await waitFor("the chip helper.js:1-3", async () => (await chat.locator("#context .chip", { hasText: "helper.js:1-3" }).count()) === 1, 15000);
    if ((await input.inputValue()).includes("#file")) fail("the #file trigger was left in the question");
    await page.screenshot({ path: join(outDir, "context.png") });
    await askInChat(chat, "And now?");
    await waitFor("the second answer", async () => (await footers(chat)).length === 2, 30000);
    const sent = (await (await fetch(`${fake.url}/_fake/log`)).json()).requests.at(-1);
    const roles = sent.body.messages.map((m) => m.role).join(",");
    if (roles !== "user,assistant,user") fail(`the follow-up sent ${roles}`);
    const last = JSON.stringify(sent.body.messages.at(-1));
    if (!last.includes("File helper.js:1-3") || !last.includes("return x + 1;")) fail(`helper.js was not sent: ${last}`);
    if (!(await chat.locator(".turn").last().locator(".chip", { hasText: "helper.js:1-3" }).count())) fail("the question does not show its #file");
    if (await chat.locator("#context .chip", { hasText: "helper.js" }).count()) fail("a #file stayed attached after it was sent");

    // #file:NAME that no open file has: nothing is sent, the question comes back, the user is told.
    const requests = (await (await fetch(`${fake.url}/_fake/log`)).json()).requests.length;
    await askInChat(chat, "Compare with #file:nope.js");
    await page.locator(".notification-toast", { hasText: "no open file is called nope.js" }).first().waitFor({ state: "visible", timeout: 15000 });
    await waitFor("the question back in the input", async () => (await input.inputValue()) === "Compare with #file:nope.js", 10000);
    if ((await (await fetch(`${fake.url}/_fake/log`)).json()).requests.length !== requests) fail("a question with an unknown #file was sent");
    await input.fill("");
    await runCommand("Notifications: Clear All Notifications");
  });

  await check("a key failing mid-answer: 🔑 2/2 (rotated), a status message, the partial answer shown as replaced", async () => {
    await fake.control("/_fake/script", { key: K1, steps: [{ kind: "reply", content: [{ type: "text", text: "This answer will break off. ".repeat(4) }], chunk: 4, interval: 0.05, error_after: 6, error_type: "rate_limit_error" }] });
    // Key 2 answers slowly, so that the rotated state is on screen while it streams.
    await fake.control("/_fake/script", { key: K2, steps: [{ kind: "reply", chunk: 2, interval: 0.15 }] });
    await runCommand("LLM Sidecar: Ask");
    const box = page.locator(".quick-input-widget", { hasText: "answer streams into the chat" });
    await box.waitFor({ state: "visible", timeout: 15000 });
    // A rate limit, not an overload: an overload rests the key for seconds only (it is
    // not the key's fault), and the tooltip below must still show the rest.
    const prompt = "And after a rate limit?";
    await page.locator(".quick-input-widget input").fill(prompt);
    await page.keyboard.press("Enter");
    await waitFor("🔑 2/2 (rotated)", async () => (await statusHistory()).includes("🔑 2/2 (rotated)"), 20000, 50);
    await waitFor("the replaced partial answer", async () => (await chat.locator(".turn .replaced").count()) > 0, 20000, 50);
    const message = page.locator(".statusbar-item", { hasText: "rotated to key 2/2" });
    if ((await statusText()) === "🔑 2/2 (rotated)") {
      const bg = await statusItem.evaluate((el) => getComputedStyle(el).backgroundColor);
      if (!bg || bg === "rgba(0, 0, 0, 0)" || bg === "transparent") fail(`no warning background: ${bg}`);
    }
    if (await message.count()) await page.screenshot({ path: join(outDir, "rotated.png") });
    else log("the rotation message was gone before the screenshot");
    await waitFor("the third answer and its footer", async () => (await footers(chat)).length === 3, 30000);
    const last = (await footers(chat)).at(-1);
    if (!/key sk-ant-api03-…2222/.test(last)) fail(`the answer did not come from key 2: ${last}`);
    // The fake says how long the last user message was: the question with its attached context.
    if (!(await turnsText(chat)).includes(`Hello from the fake ${MODEL}.`)) fail("the replayed answer is not shown");
    log(`status bar texts seen: ${JSON.stringify(await statusHistory())}`);
  });

  await check("the tooltip lists both keys with their states", async () => {
    await statusItem.hover();
    const hover = page.locator(".monaco-hover, .workbench-hover", { hasText: "LLM Sidecar" }).first();
    await hover.waitFor({ state: "visible", timeout: 10000 });
    const text = await hover.innerText();
    // The rotation is over ((rotated) cleared when key 2 answered) but the tooltip still tells of it.
    for (const want of ["…1111", "…2222", "cooling down until", "last rotation", "key 1 → key 2 of 2"]) if (!text.includes(want)) fail(`tooltip lacks ${want}: ${text}`);
    await page.screenshot({ path: join(outDir, "tooltip.png") });
    await page.mouse.move(640, 300);
  });

  await check("Reset Key Rotation: back to 🔑 1/2", async () => {
    await runCommand("LLM Sidecar: Reset Key Rotation");
    await waitFor("🔑 1/2", async () => (await statusText()) === "🔑 1/2", 15000);
  });

  await check("Stop ends the answer; New Chat starts over", async () => {
    await fake.control("/_fake/script", { key: K1, steps: [{ kind: "reply", content: [{ type: "text", text: "slow ".repeat(300) }], chunk: 5, interval: 0.1 }] });
    // Toasts (Reset Key Rotation's) sit over the panel's right end, where Stop is.
    await runCommand("Notifications: Clear All Notifications");
    await askInChat(chat, "Stop me");
    await waitFor("the slow answer to start", async () => (await turnsText(chat)).includes("slow slow"), 20000, 50);
    await chat.locator("#stop").click();
    await waitFor("the Stopped footer", async () => (await footers(chat)).at(-1) === "Stopped.", 15000);
    if ((await turnsText(chat)).includes("slow ".repeat(300).trim())) fail("the whole answer arrived despite Stop");
    await chat.locator("#new").click();
    await waitFor("an empty chat", async () => (await chat.locator(".turn").count()) === 0, 10000);
  });

  await check("Choose Model, and an error with actions for a provider without keys", async () => {
    await runCommand("LLM Sidecar: Choose Model");
    const row = page.locator(".quick-input-list .monaco-list-row", { hasText: "gpt-4o-mini" }).first();
    await row.waitFor({ timeout: 15000 });
    const listed = await page.locator(".quick-input-list").innerText();
    if (!listed.includes("claude-haiku-4-5-20251001")) fail(`the picker lacks the provider's own models: ${listed}`);
    await row.click();
    await waitFor("the chat to show the chosen model", async () => (await chat.locator("#model").innerText()).includes("openai · gpt-4o-mini"), 10000);
    await askInChat(chat, "Hello?");
    const toast = page.locator(".notification-toast", { hasText: "openai" }).first();
    await toast.waitFor({ state: "visible", timeout: 15000 });
    for (const action of ["Add Key", "Log In"]) {
      if (!(await toast.getByRole("button", { name: action }).count())) fail(`the error offers no ${action}: ${await toast.innerText()}`);
    }
    // The toast slides in: shoot it once it is still and opaque, buttons and all.
    await settled(toast);
    await page.screenshot({ path: join(outDir, "error.png") });
    await toast.locator(".codicon-notifications-clear").click({ timeout: 3000 }).catch(() => undefined);
    // Back to the configured model, remembered for this workspace like any choice.
    await runCommand("LLM Sidecar: Choose Model");
    await page.locator(".quick-input-list .monaco-list-row", { hasText: "claude-sonnet-4-5-20250929" }).first().click();
    await waitFor("🔑 1/2 for anthropic again", async () => (await statusText()) === "🔑 1/2", 15000);
  });

  await check("Add Key to Pool (password box), Show Status, Remove Key", async () => {
    const K3 = "sk-ant-api03-e2e-vscode-key-three-3333";
    await runCommand("LLM Sidecar: Add Key to Pool");
    await page.locator(".quick-input-list .monaco-list-row", { hasText: "Enter an API key" }).first().click();
    const input = page.locator(".quick-input-widget input[type=password]");
    await input.waitFor({ state: "visible", timeout: 10000 });
    await input.fill(K3);
    await page.keyboard.press("Enter");
    await waitFor("🔑 1/3", async () => (await statusText()) === "🔑 1/3", 15000);

    await runCommand("LLM Sidecar: Show Status");
    const rows = page.locator(".quick-input-list .monaco-list-row");
    await rows.filter({ hasText: "…3333" }).first().waitFor({ timeout: 10000 });
    const listed = await page.locator(".quick-input-list").innerText();
    for (const want of ["…1111", "…2222", "…3333", "Reset Key Rotation"]) if (!listed.includes(want)) fail(`Show Status lacks ${want}: ${listed}`);
    if (listed.includes(K3)) fail("Show Status shows a secret");
    await page.keyboard.press("Escape");

    await runCommand("LLM Sidecar: Remove Key");
    await rows.filter({ hasText: "…3333" }).first().click();
    await page.locator(".monaco-dialog-box").getByRole("button", { name: "Remove" }).click();
    await waitFor("🔑 1/2 after the removal", async () => (await statusText()) === "🔑 1/2", 15000);
  });

  // The browser round trip is not checked here: code-server rewrites the loopback
  // sign-in URL to its own /proxy/<port>/ route, and in our runs the tab never
  // reached the fake's authorize endpoint. The sidecar's side of the login is
  // covered by tests/oauth; here, what the user sees and clicks.
  /** VS Code asks before it opens a website: the user reads the address and says `button`. */
  async function answerOpenWebsite(button) {
    const dialog = page.locator(".monaco-dialog-box", { hasText: "open the external website" });
    await dialog.waitFor({ state: "visible", timeout: 20000 });
    const text = await dialog.innerText();
    await dialog.getByRole("button", { name: button, exact: true }).click();
    return text;
  }

  async function statusRows() {
    await runCommand("LLM Sidecar: Show Status");
    const list = page.locator(".quick-input-list");
    await list.locator(".monaco-list-row", { hasText: "…2222" }).first().waitFor({ timeout: 15000 });
    const text = await list.innerText();
    await page.keyboard.press("Escape");
    return text;
  }

  // The browser plays the user at the fake's OAuth server: the sign-in page opens from
  // the sidecar's window/showDocument, the fake "approves" with a 302 to the sidecar's
  // loopback callback, and the login appears where the user looks for it.
  await check("Log In: the browser signs in at the fake's OAuth server, the login is listed; Log Out removes it", async () => {
    const oauth = async () => (await fetch(`${fake.url}/_fake/oauth`)).json();
    const before = await oauth();
    const popup = page.context().waitForEvent("page", { timeout: 60000 });
    await runCommand("LLM Sidecar: Log In");
    const asked = await answerOpenWebsite("Open");
    if (!asked.includes(`${fake.url}/oauth/authorize`)) fail(`the sign-in page is not the fake's: ${asked}`);
    const toast = page.locator(".notification-toast", { hasText: "finish logging in" }).first();
    await toast.waitFor({ state: "visible", timeout: 15000 });
    for (const action of ["Open Again", "Paste Code Instead", "Cancel Login"]) {
      if (!(await toast.getByRole("button", { name: action }).count())) fail(`the login offers no ${action}`);
    }
    const tab = await popup;
    await waitFor("the browser tab at the sidecar's callback page", async () => /^http:\/\/localhost:\d+\/callback\?/.test(tab.url()), 30000);
    await waitFor("the fake to issue a token", async () => (await oauth()).issued > before.issued, 30000);
    await tab.close();
    await waitFor("the login counted in the status bar (🔑 n/3)", async () => /^🔑 \d\/3$/.test(await statusText()), 30000);
    const rows = await statusRows();
    if (!/sk-ant-oat01-…[\w-]{4}/.test(rows) || !rows.includes("login")) fail(`Show Status does not list the login: ${rows}`);
    await runCommand("Notifications: Clear All Notifications");

    await runCommand("LLM Sidecar: Log Out");
    await page.locator(".notification-toast", { hasText: "logged out of anthropic" }).first().waitFor({ state: "visible", timeout: 15000 });
    await waitFor("🔑 1/2 after Log Out", async () => (await statusText()) === "🔑 1/2", 15000);
    if ((await statusRows()).includes("sk-ant-oat01-")) fail("the login is still listed after Log Out");
    await runCommand("Notifications: Clear All Notifications");
  });

  await check("Log In, then Cancel Login: nothing pending, nothing added", async () => {
    await runCommand("LLM Sidecar: Log In");
    await answerOpenWebsite("Cancel");
    const toast = page.locator(".notification-toast", { hasText: "finish logging in" }).first();
    await toast.waitFor({ state: "visible", timeout: 15000 });
    await toast.getByRole("button", { name: "Cancel Login" }).click();
    await waitFor("the pending login to end (🔑 1/2, no warning)", async () => {
      const bg = await statusItem.evaluate((el) => getComputedStyle(el).backgroundColor);
      return (await statusText()) === "🔑 1/2" && (bg === "rgba(0, 0, 0, 0)" || bg === "transparent");
    }, 15000);
  });

  await check("a sidecar that cannot start: an error that says why and how to fix it", async () => {
    const settingsFile = join(userData, "User", "settings.json");
    const settings = JSON.parse(readFileSync(settingsFile, "utf8"));
    // As a user would: edit settings.json in VS Code and save it.
    async function editSettings(value) {
      await runCommand("Preferences: Open User Settings (JSON)");
      await page.locator(".editor-group-container.active .tab.active", { hasText: "settings.json" }).waitFor({ timeout: 15000 });
      await page.locator(".editor-group-container.active .monaco-editor .view-lines").first().click();
      await page.keyboard.press("Control+A");
      // One line: nothing for auto-indent or auto-closing to add.
      await page.keyboard.insertText(JSON.stringify(value));
      // Whatever auto-closing added after the cursor goes.
      await page.keyboard.press("Shift+Control+End");
      await page.keyboard.press("Delete");
      await page.keyboard.press("Control+S");
      await waitFor("settings.json saved", () => {
        try {
          return JSON.stringify(JSON.parse(readFileSync(settingsFile, "utf8"))["llmSidecar.command"]) === JSON.stringify(value["llmSidecar.command"]);
        } catch {
          return false;
        }
      }, 10000);
    }
    await editSettings({ ...settings, "llmSidecar.command": [join(work, "no-such-dir", "python3"), "-m", "sidecar"] });
    const toast = page.locator(".notification-toast", { hasText: "was not found" }).first();
    await toast.waitFor({ state: "visible", timeout: 20000 });
    const text = await toast.innerText();
    for (const want of ["pip install llm-sidecar", "llmSidecar.command", "Open Settings"]) if (!text.includes(want)) fail(`the error lacks ${want}: ${text}`);
    await waitFor("the status bar to show the failure", async () => (await statusText()).includes("sidecar"), 10000);
    await page.screenshot({ path: join(outDir, "not-found.png") });
    // Back to the working command: the sidecar restarts by itself.
    await toast.locator(".codicon-notifications-clear").click({ timeout: 3000 }).catch(() => undefined);
    await editSettings(settings);
    await waitFor("🔑 1/2 again", async () => (await statusText()) === "🔑 1/2", 20000);
  });
}

const watchdog = setTimeout(() => {
  console.log("not ok - the e2e test did not finish within 5 minutes");
  void cleanup().finally(() => process.exit(1));
}, 300000);

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    void cleanup().finally(() => process.exit(1));
  });
}

let code = 0;
try {
  await main();
} catch (err) {
  code = 1;
  if (!results.some((r) => !r.ok)) console.log(`not ok - setup: ${err.stack ?? err}`);
  if (page) {
    await page.screenshot({ path: join(outDir, "failure.png") }).catch(() => undefined);
    console.log(`screenshot of the failure: ${join(outDir, "failure.png")}`);
  }
} finally {
  clearTimeout(watchdog);
  await cleanup();
}
for (const shot of ["chat.png", "context.png", "diff.png", "rotated.png", "tooltip.png", "error.png", "not-found.png"]) {
  if (existsSync(join(outDir, shot))) console.log(`screenshot: ${join(outDir, shot)}`);
}
const passed = results.filter((r) => r.ok).length;
console.log(`e2e: ${passed} passed, ${results.length - passed + (code && results.every((r) => r.ok) ? 1 : 0)} failed`);
process.exit(code);
