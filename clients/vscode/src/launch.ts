/**
 * Which command starts the sidecar, and why it did not start. No `vscode` import.
 */
import { spawn } from "node:child_process";

export interface LaunchSettings {
  /** `llmSidecar.command`: program and arguments. Wins when non-empty. */
  command?: readonly string[];
  /** `llmSidecar.pythonPath`: a Python with llm-sidecar installed. */
  pythonPath?: string;
  /** `llmSidecar.env`: extra environment variables. */
  env?: Record<string, string>;
}

export interface LaunchCommand {
  command: string;
  args: string[];
  env: Record<string, string>;
  /** Which setting it came from, for messages. */
  from: "llmSidecar.command" | "llmSidecar.pythonPath" | "default";
}

export function defaultPython(platform: NodeJS.Platform = process.platform): string {
  return platform === "win32" ? "python" : "python3";
}

/** Expand a leading `~` and `${env:NAME}` in a setting value. */
export function expandVariables(value: string, env: NodeJS.ProcessEnv, home?: string): string {
  let out = value.replace(/\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => env[name] ?? "");
  if (home && (out === "~" || out.startsWith("~/"))) out = home + out.slice(1);
  return out;
}

export function resolveLaunch(
  settings: LaunchSettings,
  baseEnv: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform,
  home: string | undefined = baseEnv.HOME ?? baseEnv.USERPROFILE,
): LaunchCommand {
  const extra: Record<string, string> = {};
  for (const [k, v] of Object.entries(settings.env ?? {})) {
    if (typeof v === "string") extra[k] = expandVariables(v, baseEnv, home);
  }
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(baseEnv)) if (typeof v === "string") env[k] = v;
  Object.assign(env, extra);
  // The sidecar speaks UTF-8 JSON whatever the locale says.
  env.PYTHONIOENCODING ??= "utf-8";

  const command = (settings.command ?? [])
    .filter((s) => typeof s === "string")
    .map((s) => expandVariables(s, env, home));
  if (command.length > 0 && command[0].trim() !== "") {
    return { command: command[0], args: command.slice(1), env, from: "llmSidecar.command" };
  }
  const python = settings.pythonPath?.trim() ? expandVariables(settings.pythonPath.trim(), env, home) : "";
  if (python) return { command: python, args: ["-m", "sidecar"], env, from: "llmSidecar.pythonPath" };
  return { command: defaultPython(platform), args: ["-m", "sidecar"], env, from: "default" };
}

export function describeCommand(launch: Pick<LaunchCommand, "command" | "args">): string {
  return [launch.command, ...launch.args].map((a) => (/[\s"']/.test(a) ? JSON.stringify(a) : a)).join(" ");
}

const FIX =
  "Install it with `pip install llm-sidecar`, then set `llmSidecar.pythonPath` to that Python or `llmSidecar.command` to the command that starts it.";

/**
 * Runs the launch command with its stdin closed and explains why it does not
 * serve: not found, not executable, the module missing, or what it printed
 * before it exited. Undefined when it looks fine (it kept running, or exited
 * cleanly on end of input as a working sidecar does).
 */
export function diagnoseLaunch(launch: LaunchCommand, timeoutMs = 8000): Promise<string | undefined> {
  const shown = describeCommand(launch);
  return new Promise((resolve) => {
    let stderr = "";
    let settled = false;
    const done = (why: string | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(why);
    };
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(launch.command, launch.args, { env: launch.env, stdio: ["pipe", "ignore", "pipe"] });
    } catch (err) {
      done(`Could not start the LLM sidecar with \`${shown}\`: ${(err as Error).message}. ${FIX}`);
      return;
    }
    const timer = setTimeout(() => {
      child.kill();
      done(undefined);
    }, timeoutMs);
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString("utf8")).slice(-4000);
    });
    child.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") {
        done(`Could not start the LLM sidecar: \`${launch.command}\` was not found (from ${launch.from}). ${FIX}`);
      } else if (err.code === "EACCES") {
        done(`Could not start the LLM sidecar: \`${launch.command}\` is not executable (from ${launch.from}). ${FIX}`);
      } else {
        done(`Could not start the LLM sidecar with \`${shown}\`: ${err.message}. ${FIX}`);
      }
    });
    child.on("exit", (code, signal) => {
      const missing = /No module named '?([\w.]+)'?/.exec(stderr);
      if (missing) {
        done(
          `\`${shown}\` failed: ${launch.command} has no module \`${missing[1]}\`. ${FIX}`,
        );
      } else if (code === 0) {
        done(undefined);
      } else {
        const last = stderr.trim().split(/\r?\n/).slice(-3).join(" ").slice(0, 500);
        const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
        done(`The LLM sidecar (\`${shown}\`) ${how}${last ? `: ${last}` : ""}. ${FIX}`);
      }
    });
    child.stdin?.on("error", () => undefined);
    child.stdin?.end();
  });
}
