/**
 * The chat webview's page: static markup, a strict CSP (no inline script but
 * the nonced one, no network) and a small script that renders what the
 * extension sends and posts back what the user does. No `vscode` import.
 */

export function chatHtml(nonce: string, cspSource: string): string {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src ${cspSource} 'nonce-${nonce}'; script-src 'nonce-${nonce}';">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style nonce="${nonce}">${CSS}</style></head>
<body>
<div id="toolbar"><button id="model" class="link" title="Choose a model"></button><span class="spacer"></span><button id="new" title="New chat">New Chat</button></div>
<div id="turns" aria-live="polite"></div>
<div id="empty">Ask about the code on screen or your selection. Enter sends, Shift+Enter is a new line.</div>
<div id="composer">
  <div id="context"></div>
  <textarea id="input" rows="3" placeholder="Ask a question (Enter to send; #file to attach an open file)" aria-label="Question"></textarea>
  <div id="buttons"><button id="attach-file" title="Attach another open file (or type #file and a space)">#file</button><span class="spacer"></span><button id="send">Send</button><button id="stop" hidden>Stop</button></div>
</div>
<script nonce="${nonce}">${SCRIPT}</script>
</body></html>`;
}

const CSS = `
body { padding: 0; display: flex; flex-direction: column; height: 100vh; margin: 0; font-family: var(--vscode-font-family); font-size: var(--vscode-font-size); color: var(--vscode-foreground); }
#toolbar { display: flex; gap: 6px; padding: 4px 8px; border-bottom: 1px solid var(--vscode-panel-border); align-items: center; }
.spacer { flex: 1; }
button { background: var(--vscode-button-secondaryBackground); color: var(--vscode-button-secondaryForeground); border: none; padding: 2px 8px; cursor: pointer; border-radius: 2px; }
button:hover { background: var(--vscode-button-secondaryHoverBackground); }
button#send { background: var(--vscode-button-background); color: var(--vscode-button-foreground); }
button.link { background: none; color: var(--vscode-textLink-foreground); padding: 0; }
#turns { flex: 1; overflow-y: auto; padding: 0 8px; }
#empty { padding: 8px; opacity: 0.7; }
.turn { border-bottom: 1px solid var(--vscode-panel-border); padding: 6px 0; }
.question { font-weight: 600; margin: 4px 0; }
.prompt { white-space: pre-wrap; }
.footer { opacity: 0.7; font-size: 0.9em; margin-top: 4px; }
.turn[data-state="failed"] .footer { color: var(--vscode-errorForeground); opacity: 1; }
.replaced { opacity: 0.6; margin: 4px 0; }
.fallback { color: var(--vscode-editorWarning-foreground); margin: 4px 0; }
.replaced .answer { text-decoration: line-through; }
.replaced .code-actions { display: none; }
.code-block { margin: 6px 0; border: 1px solid var(--vscode-panel-border); }
.code-actions { display: flex; flex-wrap: wrap; gap: 4px; padding: 2px; background: var(--vscode-editor-background); }
.code-actions button { font-size: 0.85em; white-space: nowrap; }
.code-block pre { margin: 0; padding: 6px; overflow-x: auto; background: var(--vscode-textCodeBlock-background); }
code { font-family: var(--vscode-editor-font-family); }
#composer { border-top: 1px solid var(--vscode-panel-border); padding: 6px 8px; }
#context { margin-bottom: 4px; min-height: 0; }
.chip { display: inline-flex; gap: 4px; align-items: center; background: var(--vscode-badge-background); color: var(--vscode-badge-foreground); border-radius: 10px; padding: 1px 8px; font-size: 0.9em; margin-right: 4px; }
.chip button { background: none; color: inherit; padding: 0 2px; }
#input { width: 100%; box-sizing: border-box; resize: vertical; background: var(--vscode-input-background); color: var(--vscode-input-foreground); border: 1px solid var(--vscode-input-border, transparent); font-family: inherit; }
#buttons { display: flex; justify-content: flex-end; gap: 4px; margin-top: 4px; }
.waiting { opacity: 0.6; }
`;

// Runs in the webview. Kept as plain ES2020 in a string: the webview has no bundler.
const SCRIPT = `
const vscode = acquireVsCodeApi();
const $ = (id) => document.getElementById(id);
const input = $("input");
let busy = false;
function send() {
  const text = input.value.trim();
  if (!text || busy) return;
  vscode.postMessage({ type: "send", text });
  input.value = "";
}
$("send").addEventListener("click", send);
$("stop").addEventListener("click", () => vscode.postMessage({ type: "stop" }));
$("new").addEventListener("click", () => vscode.postMessage({ type: "new" }));
$("model").addEventListener("click", () => vscode.postMessage({ type: "pickModel" }));
$("attach-file").addEventListener("click", () => vscode.postMessage({ type: "pickFile" }));
// "#file" and a space opens the picker (as Copilot Chat's #file does); "#file:NAME" is kept, resolved on send.
input.addEventListener("input", (e) => {
  if (e.inputType !== "insertText" || e.data !== " ") return;
  const at = input.selectionStart;
  const before = input.value.slice(0, at);
  if (!/(^|\\s)#file $/.test(before)) return;
  input.value = before.slice(0, -"#file ".length) + input.value.slice(at);
  input.selectionStart = input.selectionEnd = at - "#file ".length;
  vscode.postMessage({ type: "pickFile" });
});
input.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); send(); }
});
document.addEventListener("click", (e) => {
  const t = e.target;
  if (!(t instanceof HTMLElement)) return;
  if (t.classList.contains("code-action")) {
    vscode.postMessage({ type: "code", action: t.dataset.action, turn: Number(t.dataset.turn), block: Number(t.dataset.block) });
  } else if (t.classList.contains("remove-chip")) {
    const what = t.dataset.remove || "";
    if (what === "context") vscode.postMessage({ type: "removeContext" });
    else if (what.startsWith("file:")) vscode.postMessage({ type: "removeFile", index: Number(what.slice(5)) });
  }
});
window.addEventListener("message", (event) => {
  const m = event.data;
  if (m.type === "state") {
    const turns = $("turns");
    const atBottom = turns.scrollHeight - turns.scrollTop - turns.clientHeight < 40;
    turns.innerHTML = m.html;
    $("empty").hidden = m.count > 0;
    // Follow a streaming answer unless the user scrolled up to read.
    if (atBottom || m.follow) turns.scrollTop = turns.scrollHeight;
    busy = m.busy;
    $("stop").hidden = !busy;
    $("send").disabled = busy;
    $("model").textContent = m.model;
    const ctx = $("context");
    // Labels come escaped from the extension.
    ctx.innerHTML = (m.chips || []).map((c) =>
      '<span class="chip" title="Attached to your next question">' + c.label +
      '<button class="remove-chip" data-remove="' + c.remove + '" title="Do not attach" aria-label="Remove ' + c.label + '">×</button></span>'
    ).join("");
  } else if (m.type === "focus") {
    input.focus();
    if (m.text) { input.value = m.text; }
  }
});
vscode.postMessage({ type: "ready" });
`;
