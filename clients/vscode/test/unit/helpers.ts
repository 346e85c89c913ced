/**
 * Spawning a real sidecar (and the fake provider) for the plain-Node tests,
 * and talking to it with vscode-jsonrpc, the wire library vscode-languageclient
 * is built on.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import {
  createMessageConnection,
  StreamMessageReader,
  StreamMessageWriter,
  type MessageConnection,
} from "vscode-jsonrpc/node";
import { SidecarApi } from "../../src/api";
import type { StatusNotification } from "../../src/protocol";

/** The Python that runs the sidecar: $LLM_SIDECAR_PYTHON, else the project's .venv, else python3. */
export function sidecarPython(): string {
  if (process.env.LLM_SIDECAR_PYTHON) return process.env.LLM_SIDECAR_PYTHON;
  // out/test/unit → clients/vscode → the repository root.
  for (const base of [process.cwd(), __dirname]) {
    for (const up of ["../..", "../../../..", "../../../../.."]) {
      const candidate = resolve(base, up, ".venv", "bin", "python");
      if (existsSync(candidate)) return candidate;
    }
  }
  return "python3";
}

export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]);
}

export interface Sidecar {
  connection: MessageConnection;
  api: SidecarApi;
  process: ChildProcess;
  home: string;
  stderr: () => string;
  /** Every didChangeStatus received so far. */
  statuses: StatusNotification[];
  /** Resolves with the first status (received from now on, or already) that matches. */
  waitForStatus(match: (s: StatusNotification) => boolean, ms?: number, since?: number): Promise<StatusNotification>;
  initializeResult: { serverInfo?: { name: string; version?: string } };
  close(): Promise<void>;
}

export async function startSidecar(env: Record<string, string> = {}): Promise<Sidecar> {
  const home = mkdtempSync(join(tmpdir(), "sidecar-vscode-test-"));
  const child = spawn(sidecarPython(), ["-m", "sidecar"], {
    env: {
      ...process.env,
      // No keys from the developer's environment.
      ANTHROPIC_API_KEY: "",
      ANTHROPIC_API_KEYS: "",
      ANTHROPIC_OAUTH_TOKEN: "",
      LLM_SIDECAR_HOME: home,
      ...env,
    },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
  const connection = createMessageConnection(
    new StreamMessageReader(child.stdout!),
    new StreamMessageWriter(child.stdin!),
  );
  const api = new SidecarApi(connection);
  const statuses: StatusNotification[] = [];
  const waiters = new Set<(s: StatusNotification) => void>();
  api.onDidChangeStatus((s) => {
    statuses.push(s);
    for (const w of [...waiters]) w(s);
  });
  connection.listen();

  const initializeResult = await withTimeout(
    connection.sendRequest<Sidecar["initializeResult"]>("initialize", {
      processId: process.pid,
      clientInfo: { name: "node-test" },
      rootUri: null,
      capabilities: { window: { showDocument: { support: true } } },
      initializationOptions: {
        editorInfo: { name: "node --test", version: process.version },
        editorPluginInfo: { name: "llm-sidecar-vscode", version: "0.1.0" },
      },
    }),
    15000,
    "initialize",
  ).catch((err: Error) => {
    child.kill();
    throw new Error(`${err.message}\nsidecar stderr:\n${stderr}`);
  });
  await connection.sendNotification("initialized", {});

  const sidecar: Sidecar = {
    connection,
    api,
    process: child,
    home,
    stderr: () => stderr,
    statuses,
    initializeResult,
    waitForStatus(match, ms = 5000, since = 0) {
      const seen = statuses.slice(since).find(match);
      if (seen) return Promise.resolve(seen);
      return withTimeout(
        new Promise<StatusNotification>((resolveStatus) => {
          const w = (s: StatusNotification) => {
            if (match(s)) {
              waiters.delete(w);
              resolveStatus(s);
            }
          };
          waiters.add(w);
        }),
        ms,
        "a matching sidecar/didChangeStatus",
      );
    },
    async close() {
      try {
        await withTimeout(connection.sendRequest("shutdown"), 3000, "shutdown");
        await connection.sendNotification("exit");
      } catch {
        // Killed below either way.
      }
      const exited = new Promise((r) => child.once("exit", r));
      if (child.exitCode === null && child.signalCode === null) {
        const killer = setTimeout(() => child.kill("SIGKILL"), 3000);
        child.stdin!.end();
        await exited;
        clearTimeout(killer);
      }
      connection.dispose();
      rmSync(home, { recursive: true, force: true });
    },
  };
  return sidecar;
}

export interface Fake {
  url: string;
  /** POST a JSON body to one of the fake's control endpoints (`/_fake/script`, `/_fake/reset`). */
  control(path: string, body?: unknown): Promise<unknown>;
  close(): Promise<void>;
}

export async function startFake(args: string[] = []): Promise<Fake> {
  const child = spawn(sidecarPython(), ["-m", "sidecar.fake", "--port", "0", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
  const lines = createInterface({ input: child.stdout! });
  const url = await withTimeout(
    new Promise<string>((resolveUrl, reject) => {
      lines.once("line", (line) => {
        try {
          resolveUrl((JSON.parse(line) as { url: string }).url);
        } catch (err) {
          reject(err);
        }
      });
      child.once("exit", (code) => reject(new Error(`the fake exited (${code}): ${stderr}`)));
    }),
    15000,
    "the fake's {url} line",
  );
  return {
    url,
    async control(path, body) {
      const res = await fetch(url + path, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body ?? {}),
      });
      const reply = await res.json();
      if (!res.ok) throw new Error(`fake ${path}: ${res.status} ${JSON.stringify(reply)}`);
      return reply;
    },
    async close() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        const killer = setTimeout(() => child.kill("SIGKILL"), 3000);
        await exited;
        clearTimeout(killer);
      }
    },
  };
}

/** Whether the sidecar implements `method` (it answers -32601 when it does not). */
export async function supports(sidecar: Sidecar, method: string, params: unknown): Promise<boolean> {
  try {
    await sidecar.connection.sendRequest(method, params);
    return true;
  } catch (err) {
    return (err as { code?: number }).code !== -32601;
  }
}
