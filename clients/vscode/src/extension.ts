/**
 * The extension's entry: wires the sidecar process, the status bar, the chat
 * view and the commands, each in its own module, and starts the sidecar at
 * activation so that the first question does not wait for Python.
 */
import * as vscode from "vscode";
import { Applier } from "./apply";
import { CHAT_VIEW, ChatView } from "./chat/view";
import * as commands from "./commands";
import { SECTION, useWorkspaceState } from "./settings";
import { Sidecar } from "./sidecar";
import { StatusBar } from "./statusBar";

let active: Sidecar | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  useWorkspaceState(context.workspaceState);
  const output = vscode.window.createOutputChannel("LLM Sidecar");
  const sidecar = new Sidecar(context, output);
  active = sidecar;
  const statusBar = new StatusBar(sidecar);
  const applier = new Applier();
  let chat: ChatView | undefined;
  const modelChanged = () => {
    statusBar.render();
    void statusBar.refresh();
    chat?.refresh();
  };
  const pickModel = () => commands.pickModel(sidecar, modelChanged);
  chat = new ChatView(sidecar, applier, pickModel);
  const view = chat;
  const command = (id: string, fn: () => unknown) => vscode.commands.registerCommand(`llmSidecar.${id}`, fn);
  context.subscriptions.push(
    output,
    statusBar,
    applier,
    view,
    vscode.window.registerWebviewViewProvider(CHAT_VIEW, view, { webviewOptions: { retainContextWhenHidden: true } }),
    command("ask", () => ask(view)),
    command("openChat", () => view.open()),
    command("pickModel", pickModel),
    command("login", () => commands.login(sidecar)),
    command("logout", () => commands.logout(sidecar)),
    command("keyAdd", () => commands.keyAdd(sidecar)),
    command("keyRemove", () => commands.keyRemove(sidecar)),
    command("keyReset", () => commands.keyReset(sidecar)),
    command("choosePolicy", () => commands.choosePolicy(sidecar)),
    command("showStatus", () => commands.showStatus(sidecar)),
    command("showLog", () => output.show(true)),
    command("restart", () => sidecar.start()),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (["command", "pythonPath", "env"].some((k) => e.affectsConfiguration(`${SECTION}.${k}`))) {
        void sidecar.start();
      } else if (["provider", "model"].some((k) => e.affectsConfiguration(`${SECTION}.${k}`))) {
        modelChanged();
      }
    }),
  );
  // Not awaited: activation must not wait for Python; the sidecar warms itself once up.
  void sidecar.start();
}

/** Ask: a question typed in a box, answered in the chat view with the editor's context. */
async function ask(chat: ChatView): Promise<void> {
  const prompt = await vscode.window.showInputBox({
    title: "LLM Sidecar: Ask",
    prompt: "Ask the model; the answer streams into the chat, with your selection or the visible code attached",
    placeHolder: "What does this code do?",
    ignoreFocusOut: true,
  });
  if (prompt?.trim()) await chat.open(prompt.trim(), true);
}

export async function deactivate(): Promise<void> {
  const sidecar = active;
  active = undefined;
  await sidecar?.dispose();
}
