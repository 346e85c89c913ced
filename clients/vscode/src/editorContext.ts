/**
 * Reads the context to attach from an editor: its selection, else the part of
 * the file on screen. The one place that turns VS Code ranges into an Attachment.
 */
import * as vscode from "vscode";
import { MAX_CONTEXT_LINES, type Attachment } from "./context";

export function captureAttachment(editor: vscode.TextEditor | undefined): Attachment | undefined {
  if (!editor || editor.document.uri.scheme === "output") return undefined;
  const doc = editor.document;
  const selection = editor.selection;
  let range: vscode.Range;
  let fromSelection = false;
  if (!selection.isEmpty) {
    range = selection;
    fromSelection = true;
  } else {
    const visible = editor.visibleRanges;
    if (visible.length === 0) return undefined;
    range = new vscode.Range(visible[0].start, visible[visible.length - 1].end);
  }
  let endLine = range.end.line;
  // A selection ending at column 0 does not include that line.
  if (fromSelection && range.end.character === 0 && endLine > range.start.line) endLine--;
  endLine = Math.min(endLine, range.start.line + MAX_CONTEXT_LINES - 1, doc.lineCount - 1);
  const full = new vscode.Range(range.start.line, 0, endLine, doc.lineAt(endLine).text.length);
  const text = fromSelection ? doc.getText(range.intersection(full) ?? full) : doc.getText(full);
  if (!text.trim()) return undefined;
  return {
    path: vscode.workspace.asRelativePath(doc.uri, false),
    uri: doc.uri.toString(),
    languageId: doc.languageId,
    startLine: range.start.line,
    endLine,
    text,
    fromSelection,
  };
}

/** A whole file (its first MAX_CONTEXT_LINES lines), attached with `#file`. */
export function captureFile(doc: vscode.TextDocument): Attachment | undefined {
  // The empty "line" after a final newline is not a line of the file.
  const lines = doc.lineCount > 1 && doc.lineAt(doc.lineCount - 1).text === "" ? doc.lineCount - 1 : doc.lineCount;
  const endLine = Math.min(lines - 1, MAX_CONTEXT_LINES - 1);
  const text = doc.getText(new vscode.Range(0, 0, endLine, doc.lineAt(endLine).text.length));
  if (!text.trim()) return undefined;
  return {
    path: vscode.workspace.asRelativePath(doc.uri, false),
    uri: doc.uri.toString(),
    languageId: doc.languageId,
    startLine: 0,
    endLine,
    text,
    fromSelection: false,
  };
}

/** The files open in editor tabs (text ones: not diffs, settings UIs or output), each once. */
/**
 * The documents an answer's code may be written into: the user's own files. Not the
 * output panel, nor the read-only sides of a diff (our proposed change, git's HEAD).
 */
const EDITABLE_SCHEMES = new Set(["file", "untitled", "vscode-remote"]);

export function isEditable(uri: vscode.Uri): boolean {
  return EDITABLE_SCHEMES.has(uri.scheme);
}

export function openFileUris(): vscode.Uri[] {
  const seen = new Map<string, vscode.Uri>();
  for (const group of vscode.window.tabGroups.all) {
    for (const tab of group.tabs) {
      if (!(tab.input instanceof vscode.TabInputText)) continue;
      const uri = tab.input.uri;
      if (isEditable(uri)) seen.set(uri.toString(), uri);
    }
  }
  return [...seen.values()];
}
