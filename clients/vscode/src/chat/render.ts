/**
 * Chat turns to HTML for the webview: Markdown rendered by markdown-it with raw
 * HTML off (a model's `<script>` is shown, never run), and every code block
 * given Copy / Insert / Replace buttons that name it by its index. No `vscode` import.
 */
import MarkdownIt from "markdown-it";
import type { Turn } from "./conversation";
import { chipLabels } from "./conversation";

const md = new MarkdownIt({ html: false, linkify: true, breaks: false });

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const fenceRule = md.renderer.rules.fence!;
md.renderer.rules.fence = (tokens, idx, options, env: { blocks?: number; turn?: number }, self) => {
  const block = env.blocks ?? 0;
  env.blocks = block + 1;
  const inner = fenceRule(tokens, idx, options, env, self);
  const attrs = `data-turn="${env.turn ?? 0}" data-block="${block}"`;
  const button = (action: string, label: string) =>
    `<button class="code-action" data-action="${action}" ${attrs}>${label}</button>`;
  return (
    `<div class="code-block">` +
    `<div class="code-actions">${button("copy", "Copy")}${button("insert", "Insert at Cursor")}${button("replace", "Replace Selection")}</div>` +
    `${inner}</div>`
  );
};

/** The Markdown of `text` as HTML; code blocks carry `turn` and their index. */
export function renderMarkdown(text: string, turn = 0): string {
  return md.render(text, { turn, blocks: 0 });
}

/** The code of each fenced block of `text`, in order: what the buttons' indexes name. */
export function codeBlocks(text: string): string[] {
  return md
    .parse(text, {})
    .filter((t) => t.type === "fence")
    .map((t) => t.content);
}

/** One turn: the question (with its context chip), replaced partial answers, the answer, its footer. */
export function renderTurn(turn: Turn): string {
  const out = [`<div class="turn" data-turn="${turn.id}" data-state="${turn.state}">`];
  out.push(`<div class="question">`);
  for (const chip of chipLabels(turn)) out.push(`<span class="chip sent" title="attached">${escapeHtml(chip)}</span>`);
  out.push(`<div class="prompt">${escapeHtml(turn.prompt)}</div></div>`);
  // Open while the new answer streams, so the user sees what is being replaced.
  const open = turn.state === "streaming" ? " open" : "";
  for (const r of turn.replaced) {
    out.push(
      `<details class="replaced"${open}><summary>Partial answer replaced: ${escapeHtml(r.reason)}</summary>` +
        `<div class="answer">${renderMarkdown(r.text, -1)}</div></details>`,
    );
  }
  if (turn.fallback) out.push(`<div class="fallback" role="status">↪ ${escapeHtml(turn.fallback)}</div>`);
  const waiting = turn.state === "streaming" && !turn.text ? `<div class="waiting">…</div>` : "";
  out.push(`<div class="answer">${renderMarkdown(turn.text, turn.id)}${waiting}</div>`);
  if (turn.footer) out.push(`<div class="footer">${escapeHtml(turn.footer)}</div>`);
  out.push(`</div>`);
  return out.join("");
}
