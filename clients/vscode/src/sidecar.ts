/**
 * The sidecar process: one vscode-languageclient LanguageClient at a time,
 * started (and warmed) at activation, restarted when its settings change, with
 * a crash budget and a message that says how to fix a start that fails.
 */
import * as vscode from "vscode";
import {
  CloseAction,
  ErrorAction,
  LanguageClient,
  RevealOutputChannelOn,
  State,
  type ErrorHandler,
  type LanguageClientOptions,
  type ServerOptions,
} from "vscode-languageclient/node";
import { SidecarApi } from "./api";
import { describeCommand, diagnoseLaunch, resolveLaunch, type LaunchCommand } from "./launch";
import type { InitializationOptions, StatusNotification } from "./protocol";
import { SECTION, config } from "./settings";

/**
 * A LanguageClient that logs, without a notification of its own, the errors of
 * a start that fails: the Sidecar shows one message saying why and how to fix it.
 */
class SidecarLanguageClient extends LanguageClient {
  quiet = true;

  override error(message: string, data?: unknown, showNotification: boolean | "force" = true): void {
    super.error(message, data, this.quiet ? false : showNotification);
  }
}

/** The running sidecar: one LanguageClient at a time, restarted when its settings change. */
export class Sidecar implements vscode.Disposable {
  log(line: string): void {
    this.output.appendLine(`[${new Date().toLocaleTimeString()}] ${line}`);
  }

  client: LanguageClient | undefined;
  api: SidecarApi | undefined;
  launch: LaunchCommand | undefined;
  /** Why the sidecar is not running, when it failed to start. */
  failure: string | undefined;
  private readonly statusEmitter = new vscode.EventEmitter<StatusNotification>();
  readonly onDidChangeStatus = this.statusEmitter.event;
  private readonly readyEmitter = new vscode.EventEmitter<void>();
  /** Fired when a (new) client is running, or failed to start. */
  readonly onDidChangeState = this.readyEmitter.event;
  private starting: Promise<void> | undefined;
  private crashes: number[] = [];

  constructor(
    private readonly context: vscode.ExtensionContext,
    readonly output: vscode.OutputChannel,
  ) {}

  /** The API of a running sidecar; starts it if needed, throws with the reason if it cannot start. */
  async ready(): Promise<SidecarApi> {
    if (!this.client || this.client.state === State.Stopped) await this.start({ quiet: true });
    else if (this.starting) await this.starting;
    if (!this.api || this.client?.state !== State.Running) {
      throw new Error(this.failure ?? "The LLM sidecar is not running: see the \"LLM Sidecar\" output.");
    }
    return this.api;
  }

  /** (Re)start the sidecar; unless `quiet`, a failure is shown with buttons to fix it. */
  start(options: { quiet?: boolean } = {}): Promise<void> {
    this.starting ??= this.doStart(options.quiet ?? false).finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  private async doStart(quiet: boolean): Promise<void> {
    await this.stop();
    const settings = config();
    const launch = resolveLaunch(settings);
    this.launch = launch;
    this.failure = undefined;
    this.crashes = [];
    this.log(`Starting the sidecar: ${describeCommand(launch)}`);

    const serverOptions: ServerOptions = {
      command: launch.command,
      args: launch.args,
      options: { env: launch.env },
    };
    const pkg = this.context.extension.packageJSON as { name: string; version: string };
    const initializationOptions: InitializationOptions = {
      editorInfo: { name: vscode.env.appName, version: vscode.version },
      editorPluginInfo: { name: `${pkg.name}-vscode`, version: pkg.version },
    };
    let running = false;
    const errorHandler: ErrorHandler = {
      error: () => ({ action: ErrorAction.Continue, handled: true }),
      closed: () => {
        if (!running) return { action: CloseAction.DoNotRestart, handled: true };
        const now = Date.now();
        this.crashes = [...this.crashes.filter((t) => now - t < 180_000), now];
        if (this.crashes.length <= 4) {
          this.log("The sidecar stopped; restarting it.");
          return { action: CloseAction.Restart, handled: true };
        }
        this.failure = "The LLM sidecar stopped 5 times in 3 minutes and will not be restarted: see the \"LLM Sidecar\" output, then run \"LLM Sidecar: Restart Sidecar\".";
        this.readyEmitter.fire();
        return { action: CloseAction.DoNotRestart, message: this.failure, handled: false };
      },
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [],
      outputChannel: this.output,
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      initializationOptions,
      initializationFailedHandler: () => false,
      errorHandler,
    };
    const client = new SidecarLanguageClient("llmSidecar", "LLM Sidecar", serverOptions, clientOptions);
    const api = new SidecarApi(client);
    api.onDidChangeStatus((s) => this.statusEmitter.fire(s));
    this.client = client;
    this.api = api;
    try {
      await client.start();
      running = true;
      client.quiet = false;
      this.log("The sidecar is running.");
      this.warm(api);
    } catch (err) {
      const why =
        (await diagnoseLaunch(launch)) ??
        `The LLM sidecar (\`${describeCommand(launch)}\`) did not start: ${(err as Error)?.message ?? err}. See the "LLM Sidecar" output.`;
      this.failure = why;
      this.log(why);
      this.api = undefined;
      api.dispose();
      if (!quiet) void this.showFailure(why);
    }
    this.readyEmitter.fire();
  }

  /**
   * Loads the sidecar's request path (httpx, the providers) and fills its model
   * cache now, so that the first Ask and the model picker do not wait for it.
   */
  private warm(api: SidecarApi): void {
    api.models(config().provider).then(
      () => this.log("The sidecar is warm."),
      (err: unknown) => this.log(`warm-up: ${(err as Error)?.message ?? err}`),
    );
  }

  async showFailure(why: string): Promise<void> {
    const choice = await vscode.window.showErrorMessage(why, "Open Settings", "Show Output", "Retry");
    if (choice === "Open Settings") {
      await vscode.commands.executeCommand("workbench.action.openSettings", SECTION);
    } else if (choice === "Show Output") {
      this.output.show(true);
    } else if (choice === "Retry") {
      await this.start();
    }
  }

  async stop(): Promise<void> {
    const client = this.client;
    const api = this.api;
    this.client = undefined;
    this.api = undefined;
    api?.dispose();
    if (client) {
      try {
        if (client.state !== State.Stopped) await client.stop(2000);
      } catch {
        // It is gone either way.
      }
    }
  }

  async dispose(): Promise<void> {
    await this.stop();
    this.statusEmitter.dispose();
    this.readyEmitter.dispose();
  }
}

