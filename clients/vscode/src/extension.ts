/**
 * The VS Code side: spawning the sidecar through vscode-languageclient, the
 * status bar item and the commands. Protocol logic lives in the plain modules
 * next to this one (api, collector, status, launch).
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
import { StreamCollector, planEdit, type Rendered } from "./collector";
import { describeCommand, diagnoseLaunch, resolveLaunch, type LaunchCommand } from "./launch";
import { ErrorCode } from "./protocol";
import type { InitializationOptions, StatusNotification, StreamDelta } from "./protocol";
import {
  credentialRows,
  describeError,
  statusBackground,
  statusBarText,
  tooltipMarkdown,
  type PickRow,
} from "./status";

const SECTION = "llmSidecar";

function config() {
  const c = vscode.workspace.getConfiguration(SECTION);
  return {
    command: c.get<string[]>("command", []),
    pythonPath: c.get<string>("pythonPath", ""),
    env: c.get<Record<string, string>>("env", {}),
    provider: c.get<string>("provider", "anthropic") || "anthropic",
    model: c.get<string>("model", "claude-sonnet-4-5") || "claude-sonnet-4-5",
    maxTokens: c.get<number>("maxTokens", 4096) || 4096,
  };
}

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
class Sidecar implements vscode.Disposable {
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

/** The status bar item: `🔑 1/3`, coloured by kind, with every credential in its tooltip. */
class StatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private readonly statuses = new Map<string, StatusNotification>();
  private tooltipTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly subscriptions: vscode.Disposable[] = [];

  constructor(private readonly sidecar: Sidecar) {
    this.item = vscode.window.createStatusBarItem("llmSidecar.status", vscode.StatusBarAlignment.Right, 100);
    this.item.name = "LLM Sidecar";
    this.item.command = "llmSidecar.showStatus";
    this.render();
    this.item.show();
    this.subscriptions.push(
      sidecar.onDidChangeStatus((s) => {
        this.statuses.set(s.provider, s);
        this.render();
        this.scheduleTooltip();
      }),
      sidecar.onDidChangeState(() => this.refresh()),
    );
  }

  /** Ask the sidecar for the configured provider's status (it sends none when it has no credentials). */
  async refresh(): Promise<void> {
    if (this.sidecar.failure || !this.sidecar.api) {
      this.render();
      return;
    }
    try {
      const provider = config().provider;
      const result = await this.sidecar.api.status(provider);
      for (const p of result.providers) this.statuses.set(p.provider, p);
      this.render();
      await this.updateTooltip();
    } catch (err) {
      this.sidecar.log(`status: ${describeError(err, "sidecar/status")}`);
    }
  }

  render(): void {
    if (this.sidecar.failure) {
      this.item.text = "🔑 $(error) sidecar";
      this.item.backgroundColor = new vscode.ThemeColor("statusBarItem.errorBackground");
      this.item.tooltip = this.sidecar.failure;
      return;
    }
    const status = this.statuses.get(config().provider);
    this.item.text = statusBarText(status);
    const bg = statusBackground(status?.kind);
    this.item.backgroundColor = bg ? new vscode.ThemeColor(bg) : undefined;
    this.item.accessibilityInformation = {
      label: `LLM Sidecar: ${status ? `${status.provider} ${status.text}` : "starting"}`,
    };
    if (!this.item.tooltip) this.item.tooltip = "LLM Sidecar";
  }

  private scheduleTooltip(): void {
    if (this.tooltipTimer) clearTimeout(this.tooltipTimer);
    this.tooltipTimer = setTimeout(() => {
      this.tooltipTimer = undefined;
      void this.updateTooltip().catch(() => undefined);
    }, 200);
  }

  private async updateTooltip(): Promise<void> {
    const api = this.sidecar.api;
    if (!api) return;
    const result = await api.status();
    const provider = config().provider;
    // The configured provider first, even when it has no credentials yet.
    const providers = [...result.providers].sort(
      (a, b) => Number(b.provider === provider) - Number(a.provider === provider),
    );
    const md = new vscode.MarkdownString(tooltipMarkdown(providers, result.problems), true);
    md.isTrusted = false;
    this.item.tooltip = md;
  }

  dispose(): void {
    if (this.tooltipTimer) clearTimeout(this.tooltipTimer);
    for (const s of this.subscriptions) s.dispose();
    this.item.dispose();
  }
}

async function report<T>(method: string, fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    const code = (err as { code?: number })?.code;
    if (code === ErrorCode.requestCancelled) return undefined;
    void vscode.window.showErrorMessage(`LLM Sidecar: ${describeError(err, method)}`);
    return undefined;
  }
}

/** Keeps an editor's document in step with a stream: appends, or replaces the answer after a restart. */
class DocumentStream {
  private rendered: Rendered = { generation: 0, length: 0 };
  private chain: Promise<void> = Promise.resolve();
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly document: vscode.TextDocument,
    private readonly answerStart: number,
    private readonly collector: StreamCollector,
  ) {}

  schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.chain = this.chain.then(() => this.flush());
    }, 25);
  }

  async done(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    await this.chain;
    await this.flush();
  }

  /** Append text after the answer (a footer), once the stream has ended. */
  async append(text: string): Promise<void> {
    await this.done();
    const edit = new vscode.WorkspaceEdit();
    edit.insert(this.document.uri, this.document.positionAt(this.document.getText().length), text);
    await vscode.workspace.applyEdit(edit);
  }

  private async flush(): Promise<void> {
    const plan = planEdit(this.rendered, this.collector);
    if (!plan) return;
    const start = this.document.positionAt(this.answerStart + plan.from);
    const end = this.document.positionAt(this.answerStart + this.rendered.length);
    const edit = new vscode.WorkspaceEdit();
    edit.replace(this.document.uri, new vscode.Range(start, end), plan.insert);
    if (await vscode.workspace.applyEdit(edit)) this.rendered = plan.next;
  }
}

async function ask(sidecar: Sidecar): Promise<void> {
  const prompt = await vscode.window.showInputBox({
    title: "LLM Sidecar: Ask",
    prompt: "Ask the model; the answer streams into a new editor",
    placeHolder: "What is a sidecar process?",
    ignoreFocusOut: true,
  });
  if (!prompt?.trim()) return;
  const api = await report("sidecar/stream", () => sidecar.ready());
  if (!api) return;
  const { provider, model, maxTokens } = config();

  const header = `> ${prompt.trim().replace(/\r?\n/g, "\n> ")}\n\n`;
  const document = await vscode.workspace.openTextDocument({ language: "markdown", content: header });
  const editor = await vscode.window.showTextDocument(document, { preview: false });
  const collector = new StreamCollector();
  const view = new DocumentStream(document, header.length, collector);

  await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `LLM Sidecar: ${model}`, cancellable: true },
    async (progress, token) => {
      progress.report({ message: "asking…" });
      let footer: string;
      try {
        const { result } = await api.stream(
          { provider, model, maxTokens, messages: [{ role: "user", content: prompt }] },
          {
            collector,
            token,
            onDelta: (delta: StreamDelta) => {
              if (delta.kind === "restart") {
                progress.report({ message: `retrying on another credential (${delta.reason ?? "rate limited"})…` });
              } else if (delta.kind === "text" && collector.text.length === delta.text.length) {
                progress.report({ message: "answering…" });
              }
              view.schedule();
            },
          },
        );
        const parts = [result.model];
        if (result.credential) parts.push(`key ${result.credential.fingerprint}`);
        if (result.usage) parts.push(`${result.usage.inputTokens} in / ${result.usage.outputTokens} out tokens`);
        if (result.cost) parts.push(`$${result.cost.total.toFixed(6)}`);
        if (result.attempts && result.attempts > 1) parts.push(`${result.attempts} attempts`);
        footer = `\n\n---\n_${parts.join(" · ")}_\n`;
      } catch (err) {
        const code = (err as { code?: number })?.code;
        if (code === ErrorCode.requestCancelled || token.isCancellationRequested) {
          footer = "\n\n---\n_(cancelled)_\n";
        } else {
          const why = describeError(err, "sidecar/stream");
          footer = `\n\n---\n_(failed: ${why})_\n`;
          void vscode.window.showErrorMessage(`LLM Sidecar: ${why}`);
        }
      }
      await view.append(footer);
      const end = document.positionAt(document.getText().length);
      if (!editor.document.isClosed) editor.revealRange(new vscode.Range(end, end));
    },
  );
}

async function login(sidecar: Sidecar): Promise<void> {
  const api = await report("sidecar/login", () => sidecar.ready());
  if (!api) return;
  const { provider } = config();
  const started = await report("sidecar/login", () => api.login({ provider }));
  if (!started) return;

  const paste = async (): Promise<void> => {
    const input = await new Promise<string | undefined>((resolve) => {
      const box = vscode.window.createInputBox();
      box.title = `LLM Sidecar: Log In to ${provider}`;
      box.prompt = "Sign in in the browser, then paste the code it shows (code#state) or the whole redirect URL.";
      box.password = true;
      box.ignoreFocusOut = true;
      const open: vscode.QuickInputButton = {
        iconPath: new vscode.ThemeIcon("link-external"),
        tooltip: "Open the login page again",
      };
      box.buttons = [open];
      box.onDidTriggerButton(() => void vscode.env.openExternal(vscode.Uri.parse(started.url)));
      box.onDidAccept(() => {
        resolve(box.value.trim() || undefined);
        box.hide();
      });
      box.onDidHide(() => {
        resolve(undefined);
        box.dispose();
      });
      box.show();
    });
    if (!input) {
      await api.loginCancel(started.loginId).catch(() => undefined);
      return;
    }
    if ((await report("sidecar/loginComplete", () => api.loginComplete(started.loginId, input))) !== undefined) {
      void vscode.window.showInformationMessage(`LLM Sidecar: logged in to ${provider}.`);
    }
  };

  if (started.mode === "paste") {
    await paste();
    return;
  }
  // Auto mode: the sidecar asked VS Code (window/showDocument) to open the page;
  // its loopback server catches the redirect and the status bar reports the outcome.
  const choice = await vscode.window.showInformationMessage(
    `LLM Sidecar: finish logging in to ${provider} in your browser.`,
    "Open Again",
    "Paste Code Instead",
    "Cancel Login",
  );
  if (choice === "Open Again") await vscode.env.openExternal(vscode.Uri.parse(started.url));
  else if (choice === "Paste Code Instead") await paste();
  else if (choice === "Cancel Login") await api.loginCancel(started.loginId).catch(() => undefined);
}

async function logout(sidecar: Sidecar): Promise<void> {
  const api = await report("sidecar/logout", () => sidecar.ready());
  if (!api) return;
  const { provider } = config();
  if ((await report("sidecar/logout", () => api.logout({ provider }))) !== undefined) {
    void vscode.window.showInformationMessage(`LLM Sidecar: logged out of ${provider}.`);
  }
}

async function keyAdd(sidecar: Sidecar): Promise<void> {
  const api = await report("sidecar/keyAdd", () => sidecar.ready());
  if (!api) return;
  const { provider } = config();
  const choice = await vscode.window.showQuickPick(
    [
      { label: "$(key) Enter an API key…", id: "key" as const },
      { label: "$(account) Add the current login", detail: "the account you logged in with (LLM Sidecar: Log In)", id: "login" as const },
    ],
    { title: `LLM Sidecar: Add Key to the ${provider} Pool` },
  );
  if (!choice) return;
  let key: string | undefined;
  if (choice.id === "key") {
    key = (
      await vscode.window.showInputBox({
        title: `LLM Sidecar: Add Key to the ${provider} Pool`,
        prompt: "The key is stored by the sidecar (file mode 0600) and only shown by its fingerprint.",
        placeHolder: "sk-ant-api03-…",
        password: true,
        ignoreFocusOut: true,
        validateInput: (v) => (v.trim() ? undefined : "Paste a key"),
      })
    )?.trim();
    if (!key) return;
  }
  const result = await report("sidecar/keyAdd", () => api.keyAdd(key ? { provider, key } : { provider }));
  if (!result) return;
  void vscode.window.showInformationMessage(
    result.added
      ? `LLM Sidecar: added ${result.credential.fingerprint} to the ${provider} pool (${result.status.text}).`
      : `LLM Sidecar: ${result.credential.fingerprint} is already in the ${provider} pool.`,
  );
}

async function keyRemove(sidecar: Sidecar): Promise<void> {
  const api = await report("sidecar/keyList", () => sidecar.ready());
  if (!api) return;
  const { provider } = config();
  const status = await report("sidecar/status", async () => (await api.status(provider)).providers[0]);
  if (!status) return;
  const rows = credentialRows(status);
  if (rows.length === 0) {
    void vscode.window.showInformationMessage(`LLM Sidecar: no ${provider} credentials to remove.`);
    return;
  }
  const pick = await vscode.window.showQuickPick(rows, {
    title: `LLM Sidecar: Remove a ${provider} Key`,
    placeHolder: "Environment keys are removed by unsetting their variable",
  });
  if (!pick?.credential) return;
  const ok = await vscode.window.showWarningMessage(
    `Remove ${pick.credential.fingerprint} from the ${provider} pool? The sidecar forgets the key.`,
    { modal: true },
    "Remove",
  );
  if (ok !== "Remove") return;
  const result = await report("sidecar/keyRemove", () =>
    api.keyRemove({ provider, fingerprint: pick.credential!.id }),
  );
  if (result) {
    void vscode.window.showInformationMessage(`LLM Sidecar: removed ${result.removed.fingerprint} (${result.status.text}).`);
  }
}

async function keyReset(sidecar: Sidecar): Promise<void> {
  const api = await report("sidecar/keyReset", () => sidecar.ready());
  if (!api) return;
  const { provider } = config();
  const status = await report("sidecar/keyReset", () => api.keyReset(provider));
  if (status) void vscode.window.showInformationMessage(`LLM Sidecar: ${provider} rotation reset (${status.text}).`);
}

async function showStatus(sidecar: Sidecar): Promise<void> {
  if (sidecar.failure) {
    await sidecar.showFailure(sidecar.failure);
    return;
  }
  const api = await report("sidecar/status", () => sidecar.ready());
  if (!api) return;
  const result = await report("sidecar/status", () => api.status());
  if (!result) return;
  const { provider } = config();
  type Row = vscode.QuickPickItem & PickRow & { command?: string };
  const rows: Row[] = [];
  const providers = [...result.providers].sort(
    (a, b) => Number(b.provider === provider) - Number(a.provider === provider),
  );
  for (const p of providers) {
    rows.push({ label: `${p.provider}  ${p.text}`, kind: vscode.QuickPickItemKind.Separator });
    if (p.message) rows.push({ label: `$(info) ${p.message}` });
    rows.push(...credentialRows(p));
  }
  if (providers.length === 0) rows.push({ label: `$(info) No credentials yet` });
  for (const problem of result.problems) rows.push({ label: `$(warning) ${problem}` });
  rows.push(
    { label: "actions", kind: vscode.QuickPickItemKind.Separator },
    { label: "$(add) Add Key to Pool", command: "llmSidecar.keyAdd" },
    { label: "$(trash) Remove Key", command: "llmSidecar.keyRemove" },
    { label: "$(debug-restart) Reset Key Rotation", command: "llmSidecar.keyReset" },
    { label: "$(sign-in) Log In", command: "llmSidecar.login" },
    { label: "$(comment-discussion) Ask", command: "llmSidecar.ask" },
  );
  const pick = await vscode.window.showQuickPick(rows, {
    title: `LLM Sidecar: Status (${provider} in the status bar)`,
    matchOnDescription: true,
  });
  if (pick?.command) await vscode.commands.executeCommand(pick.command);
}

let active: Sidecar | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const output = vscode.window.createOutputChannel("LLM Sidecar");
  const sidecar = new Sidecar(context, output);
  active = sidecar;
  const statusBar = new StatusBar(sidecar);
  context.subscriptions.push(
    output,
    statusBar,
    vscode.commands.registerCommand("llmSidecar.ask", () => ask(sidecar)),
    vscode.commands.registerCommand("llmSidecar.login", () => login(sidecar)),
    vscode.commands.registerCommand("llmSidecar.logout", () => logout(sidecar)),
    vscode.commands.registerCommand("llmSidecar.keyAdd", () => keyAdd(sidecar)),
    vscode.commands.registerCommand("llmSidecar.keyRemove", () => keyRemove(sidecar)),
    vscode.commands.registerCommand("llmSidecar.keyReset", () => keyReset(sidecar)),
    vscode.commands.registerCommand("llmSidecar.showStatus", () => showStatus(sidecar)),
    vscode.commands.registerCommand("llmSidecar.restart", () => sidecar.start()),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (["command", "pythonPath", "env"].some((k) => e.affectsConfiguration(`${SECTION}.${k}`))) {
        void sidecar.start();
      } else if (e.affectsConfiguration(`${SECTION}.provider`)) {
        statusBar.render();
        void statusBar.refresh();
      }
    }),
  );
  // Not awaited: activation must not wait for Python to start.
  void sidecar.start();
}

export async function deactivate(): Promise<void> {
  const sidecar = active;
  active = undefined;
  await sidecar?.dispose();
}
