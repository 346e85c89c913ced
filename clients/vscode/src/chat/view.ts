/**
 * The chat view (a webview in the LLM Sidecar side bar): a conversation with
 * follow-ups, streamed Markdown, Stop and New Chat, the context chip, and code
 * block actions. Rendering is in render.ts, the conversation in conversation.ts.
 */
import * as vscode from "vscode";
import { CancellationTokenSource } from "vscode";
import type { Attachment } from "../context";
import { attachmentLabel, fileMentions, matchOpenFile } from "../context";
import { captureAttachment, captureFile, isEditable, openFileUris } from "../editorContext";
import { showError } from "../errors";
import { ErrorCode } from "../protocol";
import { config } from "../settings";
import type { Sidecar } from "../sidecar";
import type { Applier } from "../apply";
import { Conversation, footerText, type Turn } from "./conversation";
import { codeBlocks, escapeHtml, renderTurn } from "./render";
import { chatHtml } from "./webview";

export const CHAT_VIEW = "llmSidecar.chat";

/** Webview updates while streaming are batched to this interval. */
const RENDER_INTERVAL_MS = 50;

type FromWebview =
  | { type: "ready" | "stop" | "new" | "removeContext" | "pickModel" | "pickFile" }
  | { type: "removeFile"; index: number }
  | { type: "send"; text: string }
  | { type: "code"; action: "copy" | "insert" | "replace"; turn: number; block: number };

export class ChatView implements vscode.WebviewViewProvider, vscode.Disposable {
  private view: vscode.WebviewView | undefined;
  private conversation = new Conversation();
  private cancel: CancellationTokenSource | undefined;
  private lastEditor: vscode.TextEditor | undefined = vscode.window.activeTextEditor;
  private attachment: Attachment | undefined;
  /** Other open files attached with `#file` to the next question. */
  private files: Attachment[] = [];
  /** The chip the user removed: not attached until the selection or editor changes. */
  private removedKey: string | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private follow = false;
  private readonly subscriptions: vscode.Disposable[] = [];

  constructor(
    private readonly sidecar: Sidecar,
    private readonly applier: Applier,
    private readonly pickModel: () => Promise<void>,
  ) {
    const track = (editor: vscode.TextEditor | undefined) => {
      // Only the user's files: after "Replace Selection" the diff's read-only sides
      // pass through here, and an insert aimed at them would silently do nothing.
      if (editor && isEditable(editor.document.uri)) this.lastEditor = editor;
      this.updateContext();
    };
    this.subscriptions.push(
      vscode.window.onDidChangeActiveTextEditor(track),
      vscode.window.onDidChangeTextEditorSelection((e) => track(e.textEditor)),
      vscode.window.onDidChangeTextEditorVisibleRanges((e) => track(e.textEditor)),
    );
    this.updateContext();
  }

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    const nonce = Array.from({ length: 24 }, () => Math.floor(Math.random() * 36).toString(36)).join("");
    view.webview.options = { enableScripts: true, localResourceRoots: [] };
    view.webview.html = chatHtml(nonce, view.webview.cspSource);
    view.webview.onDidReceiveMessage((m: FromWebview) => void this.receive(m), undefined, this.subscriptions);
    view.onDidDispose(() => (this.view = undefined), undefined, this.subscriptions);
  }

  /** Show the view and put `text` in its input (Ask sends it at once). */
  async open(text?: string, send = false): Promise<void> {
    await vscode.commands.executeCommand(`${CHAT_VIEW}.focus`);
    if (send && text) await this.send(text);
    else void this.view?.webview.postMessage({ type: "focus", text });
  }

  private async receive(m: FromWebview): Promise<void> {
    switch (m.type) {
      case "ready":
        this.render();
        break;
      case "send":
        await this.send(m.text);
        break;
      case "stop":
        this.cancel?.cancel();
        break;
      case "new":
        this.cancel?.cancel();
        this.conversation = new Conversation();
        this.render();
        break;
      case "removeContext":
        this.removedKey = this.attachmentKey(this.attachment);
        this.attachment = undefined;
        this.render();
        break;
      case "pickModel":
        await this.pickModel();
        break;
      case "pickFile":
        await this.pickFile();
        break;
      case "removeFile":
        this.files.splice(m.index, 1);
        this.render();
        break;
      case "code":
        await this.code(m.action, m.turn, m.block);
        break;
    }
  }

  private attachmentKey(a: Attachment | undefined): string | undefined {
    return a && `${a.uri}:${a.startLine}-${a.endLine}:${a.fromSelection}`;
  }

  private updateContext(): void {
    const next = captureAttachment(this.lastEditor);
    const key = this.attachmentKey(next);
    if (key !== this.removedKey) this.removedKey = undefined;
    const shown = this.removedKey ? undefined : next;
    if (this.attachmentKey(shown) === this.attachmentKey(this.attachment)) {
      this.attachment = shown; // same place, maybe new text
      return;
    }
    this.attachment = shown;
    this.render();
  }

  /** `#file`: a quick pick of the other open files; the one chosen is attached to the next question. */
  private async pickFile(): Promise<void> {
    const taken = new Set(this.files.map((f) => f.uri));
    const rows = openFileUris()
      .filter((uri) => !taken.has(uri.toString()))
      .map((uri) => ({ label: vscode.workspace.asRelativePath(uri, false), uri }));
    if (rows.length === 0) {
      void vscode.window.showInformationMessage("LLM Sidecar: no other open file to attach. Open it in an editor first.");
      return;
    }
    const picked = await vscode.window.showQuickPick(rows, {
      title: "LLM Sidecar: attach an open file (#file)",
      placeHolder: "The whole file goes with your next question",
    });
    if (picked) await this.attachFile(picked.uri);
    void this.view?.webview.postMessage({ type: "focus" });
  }

  private async attachFile(uri: vscode.Uri): Promise<boolean> {
    const file = captureFile(await vscode.workspace.openTextDocument(uri));
    if (!file) return false;
    if (!this.files.some((f) => f.uri === file.uri)) this.files.push(file);
    this.render();
    return true;
  }

  /** Attach the open files `#file:NAME` names; false (and why, to the user) when one is not open. */
  private async attachMentions(prompt: string): Promise<boolean> {
    const open = openFileUris().map((uri) => ({ path: vscode.workspace.asRelativePath(uri, false), uri }));
    for (const name of fileMentions(prompt)) {
      const found = matchOpenFile(name, open);
      if (!found || Array.isArray(found)) {
        const why = found
          ? `several open files are called ${name} (${found.map((f) => f.path).join(", ")}): write its path, e.g. #file:${found[0].path}`
          : `no open file is called ${name}: open it in an editor first, or type #file and a space to pick one`;
        void vscode.window.showWarningMessage(`LLM Sidecar: #file:${name}: ${why}.`);
        return false;
      }
      await this.attachFile(found.uri);
    }
    return true;
  }

  async send(prompt: string): Promise<void> {
    if (this.conversation.busy) return;
    if (!(await this.attachMentions(prompt))) {
      // Nothing was sent: give the question back to fix.
      void this.view?.webview.postMessage({ type: "focus", text: prompt });
      return;
    }
    const api = await this.readyApi();
    if (!api) return;
    const { provider, model, maxTokens } = config();
    const conversation = this.conversation;
    const files = this.files;
    this.files = [];
    const { turn, messages } = conversation.ask(prompt, this.attachment, files);
    const cancel = new CancellationTokenSource();
    this.cancel = cancel;
    this.follow = true;
    this.render();
    try {
      // The collector builds the answer from the deltas: the result need not repeat it.
      const { result, collector: collected } = await api.stream(
        { provider, model, maxTokens, messages, omitContent: true },
        {
          token: cancel.token,
          onDelta: (delta, collector) => {
            if (delta.kind === "restart") conversation.restart(turn, delta.reason);
            if (delta.kind === "fallback") conversation.fallback(turn, delta.provider, delta.model, delta.reason);
            turn.text = collector.text;
            this.schedule();
          },
        },
      );
      turn.text = collected.text;
      turn.state = "done";
      turn.footer = footerText(result);
    } catch (err) {
      const code = (err as { code?: number })?.code;
      if (code === ErrorCode.requestCancelled || cancel.token.isCancellationRequested) {
        turn.state = "cancelled";
        turn.footer = "Stopped.";
      } else {
        turn.state = "failed";
        turn.footer = `Failed: ${(err as Error)?.message ?? err}`;
        void showError(this.sidecar, err, "sidecar/stream");
      }
    } finally {
      cancel.dispose();
      if (this.cancel === cancel) this.cancel = undefined;
      this.render();
    }
  }

  private async readyApi() {
    try {
      return await this.sidecar.ready();
    } catch (err) {
      void showError(this.sidecar, err, "sidecar/stream");
      return undefined;
    }
  }

  private turnById(id: number): Turn | undefined {
    return this.conversation.turns.find((t) => t.id === id);
  }

  private async code(action: "copy" | "insert" | "replace", turnId: number, block: number): Promise<void> {
    const turn = this.turnById(turnId);
    const code = turn && codeBlocks(turn.text)[block];
    if (code === undefined || !turn) return;
    if (action === "copy") return this.applier.copy(code);
    const editor = await this.sourceEditor(turn);
    if (action === "insert") return this.applier.insert(editor, code);
    const a = turn.attachment;
    const range =
      a?.fromSelection && editor?.document.uri.toString() === a.uri
        ? new vscode.Range(a.startLine, 0, a.endLine, editor.document.lineAt(a.endLine).text.length)
        : undefined;
    return this.applier.replace(editor, code, range);
  }

  /** The editor the answer applies to: the question's file when it had one, else the last editor. */
  private async sourceEditor(turn: Turn): Promise<vscode.TextEditor | undefined> {
    const uri = turn.attachment?.uri;
    if (uri && this.lastEditor?.document.uri.toString() !== uri) {
      const doc = await vscode.workspace.openTextDocument(vscode.Uri.parse(uri));
      return vscode.window.showTextDocument(doc, { preserveFocus: false });
    }
    if (this.lastEditor) return vscode.window.showTextDocument(this.lastEditor.document, this.lastEditor.viewColumn);
    return undefined;
  }

  /** Show the current model and context again (the model was chosen elsewhere). */
  refresh(): void {
    this.render();
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.render();
    }, RENDER_INTERVAL_MS);
  }

  private render(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (!this.view) return;
    const { provider, model } = config();
    const turns = this.conversation.turns;
    void this.view.webview.postMessage({
      type: "state",
      html: turns.map(renderTurn).join(""),
      count: turns.length,
      busy: this.conversation.busy,
      follow: this.follow,
      model: `${provider} · ${model}`,
      chips: [
        ...this.files.map((f, i) => ({ label: escapeHtml(attachmentLabel(f)), remove: `file:${i}` })),
        ...(this.attachment ? [{ label: escapeHtml(attachmentLabel(this.attachment)), remove: "context" }] : []),
      ],
    });
    this.follow = false;
  }

  dispose(): void {
    this.cancel?.cancel();
    if (this.timer) clearTimeout(this.timer);
    for (const s of this.subscriptions) s.dispose();
  }
}
