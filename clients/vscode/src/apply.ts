/**
 * Applying a code block from an answer: copy, insert at the cursor, or replace
 * the selection through a diff the user accepts (nothing changes before "Apply").
 */
import * as vscode from "vscode";

const SCHEME = "llm-sidecar-proposal";

/** The proposed documents shown on the right of the diff, by URI. */
class Proposals implements vscode.TextDocumentContentProvider {
  private readonly texts = new Map<string, string>();
  private counter = 0;

  add(name: string, text: string): vscode.Uri {
    const uri = vscode.Uri.from({ scheme: SCHEME, path: `/${++this.counter}/${name}` });
    this.texts.set(uri.toString(), text);
    return uri;
  }

  forget(uri: vscode.Uri): void {
    this.texts.delete(uri.toString());
  }

  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.texts.get(uri.toString()) ?? "";
  }
}

export class Applier implements vscode.Disposable {
  private readonly proposals = new Proposals();
  private readonly registration = vscode.workspace.registerTextDocumentContentProvider(SCHEME, this.proposals);

  async copy(code: string): Promise<void> {
    await vscode.env.clipboard.writeText(code);
    vscode.window.setStatusBarMessage("$(check) Code copied", 3000);
  }

  async insert(editor: vscode.TextEditor | undefined, code: string): Promise<void> {
    if (!editor) {
      void vscode.window.showWarningMessage("LLM Sidecar: open an editor to insert the code into.");
      return;
    }
    const done = await editor.edit((b) => b.replace(editor.selection.active, code));
    if (!done) void vscode.window.showWarningMessage(`LLM Sidecar: could not insert into ${editor.document.uri.path.split("/").pop()}.`);
  }

  /**
   * Replace `range` (the question's selection, else the editor's) with `code`:
   * the diff opens first, and only "Apply" edits the file, if it has not changed since.
   */
  async replace(editor: vscode.TextEditor | undefined, code: string, range?: vscode.Range): Promise<void> {
    if (!editor) {
      void vscode.window.showWarningMessage("LLM Sidecar: open an editor to replace its selection.");
      return;
    }
    const doc = editor.document;
    const target = range ?? (editor.selection.isEmpty ? undefined : editor.selection);
    if (!target) {
      void vscode.window.showWarningMessage("LLM Sidecar: select the code to replace first.");
      return;
    }
    const version = doc.version;
    const text = doc.getText();
    const proposed = text.slice(0, doc.offsetAt(target.start)) + code + text.slice(doc.offsetAt(target.end));
    const name = doc.uri.path.split("/").pop() || "file";
    const right = this.proposals.add(name, proposed);
    await vscode.commands.executeCommand("vscode.diff", doc.uri, right, `${name} ↔ proposed change`, {
      preview: true,
    });
    const choice = await vscode.window.showInformationMessage(
      `LLM Sidecar: apply the proposed change to ${name}?`,
      "Apply",
      "Discard",
    );
    this.proposals.forget(right);
    if (choice !== "Apply") return;
    if (doc.version !== version) {
      void vscode.window.showWarningMessage(`LLM Sidecar: ${name} changed meanwhile; nothing was applied.`);
      return;
    }
    const edit = new vscode.WorkspaceEdit();
    edit.replace(doc.uri, target, code);
    await vscode.workspace.applyEdit(edit);
    // The diff's left side is the file itself: close the diff, show the file.
    await vscode.commands.executeCommand("workbench.action.closeActiveEditor");
    await vscode.window.showTextDocument(doc, { selection: target.with(undefined, target.start) });
  }

  dispose(): void {
    this.registration.dispose();
  }
}
