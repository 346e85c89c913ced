/**
 * The chat's plain parts: the conversation a follow-up sends, a restart kept as
 * a replaced answer, context attached and labelled, Markdown and code block
 * actions, errors with actions and the rotation message.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Conversation, footerText } from "../../src/chat/conversation";
import { codeBlocks, renderMarkdown, renderTurn } from "../../src/chat/render";
import { attachmentLabel, fileMentions, matchOpenFile, userContent, type Attachment } from "../../src/context";
import { chatHtml } from "../../src/chat/webview";
import { Script } from "node:vm";
import { ErrorCode } from "../../src/protocol";
import { errorActions, rotationMessage } from "../../src/status";

const SELECTION: Attachment = {
  path: "src/a.ts",
  uri: "file:///w/src/a.ts",
  languageId: "typescript",
  startLine: 2,
  endLine: 13,
  text: "const a = 1;\n```not a fence end```",
  fromSelection: true,
};

describe("context", () => {
  it("labels lines as the gutter shows them", () => {
    assert.equal(attachmentLabel(SELECTION), "src/a.ts:3-14");
    assert.equal(attachmentLabel({ ...SELECTION, endLine: 2 }), "src/a.ts:3");
  });

  it("puts the attachment before the question, in a fence its text cannot close", () => {
    const content = userContent("Why?", SELECTION);
    assert.match(content, /^Selected code from src\/a\.ts:3-14:\n\n````typescript\n/);
    assert.ok(content.endsWith("\n````\n\nWhy?"));
    assert.equal(userContent("Why?"), "Why?");
  });
});

describe("#file", () => {
  const HELPER: Attachment = { path: "lib/helper.js", uri: "file:///w/lib/helper.js", languageId: "javascript", startLine: 0, endLine: 1, text: "export const h = 1;\nexport const i = 2;", fromSelection: false };

  it("finds #file:NAME mentions, each once", () => {
    assert.deepEqual(fileMentions("#file:a.ts compare with #file:lib/b.ts and #file:a.ts"), ["a.ts", "lib/b.ts"]);
    assert.deepEqual(fileMentions("no mail@x#file:a.ts here, #file alone"), []);
  });

  it("matches an open file by path, or by a base name only one file has", () => {
    const open = [{ path: "lib/helper.js" }, { path: "a/x.ts" }, { path: "b/x.ts" }];
    assert.equal(matchOpenFile("lib/helper.js", open), open[0]);
    assert.equal(matchOpenFile("helper.js", open), open[0]);
    assert.deepEqual(matchOpenFile("x.ts", open), [open[1], open[2]]);
    assert.equal(matchOpenFile("nope.ts", open), undefined);
  });

  it("sends the attached files before the selection, and shows a chip for each", () => {
    const c = new Conversation();
    const { turn, messages } = c.ask("Use h here", SELECTION, [HELPER]);
    const content = String(messages[0].content);
    assert.match(content, /^File lib\/helper\.js:1-2:\n\n```javascript\nexport const h = 1;\nexport const i = 2;\n```\n\nSelected code from src\/a\.ts:3-14:/);
    assert.ok(content.endsWith("Use h here"));
    const html = renderTurn(turn);
    assert.ok(html.includes(">lib/helper.js:1-2</span>") && html.includes(">src/a.ts:3-14</span>"), html);
  });

  it("the webview's script compiles and opens the picker on '#file '", () => {
    const html = chatHtml("n0nce", "vscode-resource:");
    const script = html.slice(html.indexOf('<script nonce="n0nce">') + 22, html.lastIndexOf("</script>"));
    assert.doesNotThrow(() => new Script(script));
    assert.ok(script.includes("/(^|\\s)#file $/"), "the trigger's regex survives the template string");
  });
});

describe("conversation", () => {
  it("sends the finished turns before a follow-up, with their context", () => {
    const c = new Conversation();
    const first = c.ask("What is a?", SELECTION);
    assert.equal(first.messages.length, 1);
    first.turn.text = "A constant.";
    first.turn.state = "done";
    const failed = c.ask("Broken");
    failed.turn.state = "failed";
    const next = c.ask("And b?");
    assert.deepEqual(
      next.messages.map((m) => m.role),
      ["user", "assistant", "user"],
    );
    assert.equal(next.messages[0].content, userContent("What is a?", SELECTION));
    assert.equal(next.messages[1].content, "A constant.");
    assert.ok(c.busy);
  });

  it("keeps a restarted partial answer as replaced", () => {
    const c = new Conversation();
    const { turn } = c.ask("Hi");
    turn.text = "Half an ans";
    c.restart(turn, "rate limited");
    assert.equal(turn.text, "");
    assert.deepEqual(turn.replaced, [{ text: "Half an ans", reason: "rate limited" }]);
    assert.match(renderTurn(turn), /<details class="replaced" open><summary>Partial answer replaced: rate limited/);
    turn.state = "done";
    assert.match(renderTurn(turn), /<details class="replaced"><summary>/);
  });

  it("shows a fallback above the answer and names the provider that answered", () => {
    const c = new Conversation();
    const { turn } = c.ask("Hi");
    turn.text = "Half";
    c.fallback(turn, "openrouter", "anthropic/claude-sonnet-4.5", "1 anthropic credential tried (1 rate limited)");
    turn.text = "Whole answer";
    const html = renderTurn(turn);
    assert.match(
      html,
      /<div class="fallback" role="status">↪ Answered by the fallback openrouter anthropic\/claude-sonnet-4.5: 1 anthropic credential tried \(1 rate limited\)<\/div>/,
    );
    assert.match(html, /Partial answer replaced: moved to the fallback openrouter/);
    assert.ok(html.indexOf('class="fallback"') < html.indexOf("Whole answer"), "announced before the answer");
    const footer = footerText({
      streamId: "s",
      model: "anthropic/claude-sonnet-4.5",
      stopReason: "end_turn",
      usage: { inputTokens: 1, outputTokens: 2, cacheReadTokens: 0, cacheWriteTokens: 0 },
      provider: "openrouter",
      fallbackFrom: { provider: "anthropic", model: "claude-sonnet-4-5", reason: "rate limited" },
    });
    assert.equal(
      footer,
      "openrouter anthropic/claude-sonnet-4.5 (fallback for anthropic claude-sonnet-4-5) · 1 in / 2 out",
    );
  });

  it("says which key answered and what it cost", () => {
    const footer = footerText({
      streamId: "s",
      model: "claude-sonnet-4-5",
      stopReason: "end_turn",
      usage: { inputTokens: 12, outputTokens: 40, cacheReadTokens: 0, cacheWriteTokens: 0 },
      cost: { input: 0, output: 0, cacheRead: 0, cacheWrite: 0, total: 0.000636, currency: "USD" },
      credential: { id: "anthropic:env-1", fingerprint: "sk-ant-…a1b2" },
      attempts: 2,
    });
    assert.equal(footer, "claude-sonnet-4-5 · key sk-ant-…a1b2 · 12 in / 40 out · $0.000636 · 2 attempts");
  });
});

describe("rendering", () => {
  const answer = "Try this:\n\n```ts\nconst x = 1;\n```\n\nor\n\n```\ny()\n```\n<script>alert(1)</script>";

  it("gives each code block Copy, Insert and Replace, numbered as codeBlocks numbers them", () => {
    const html = renderMarkdown(answer, 7);
    for (const block of [0, 1]) {
      for (const action of ["copy", "insert", "replace"]) {
        assert.ok(html.includes(`data-action="${action}" data-turn="7" data-block="${block}"`), `${action} ${block}`);
      }
    }
    assert.deepEqual(codeBlocks(answer), ["const x = 1;\n", "y()\n"]);
  });

  it("shows a model's HTML as text, never as markup", () => {
    const html = renderMarkdown(answer);
    assert.ok(!html.includes("<script>"));
    assert.ok(html.includes("&lt;script&gt;"));
  });

  it("renders a half-streamed code block", () => {
    assert.deepEqual(codeBlocks("```py\nprint("), ["print("]);
  });
});

describe("errors and rotation", () => {
  it("offers the action that fixes the error", () => {
    assert.deepEqual(errorActions({ code: ErrorCode.noCredentials }), ["Add Key", "Log In", "Open Log"]);
    assert.equal(errorActions({ code: ErrorCode.allRateLimited })[0], "Show Status");
    assert.deepEqual(errorActions(new Error("boom")), ["Open Log"]);
  });

  it("says so once when the sidecar rotates", () => {
    const base = { provider: "anthropic", kind: "Normal" as const, text: "🔑 1/2", index: 1, size: 2, rotated: false };
    const rotated = { ...base, kind: "Warning" as const, text: "🔑 2/2 (rotated)", index: 2, rotated: true };
    assert.equal(rotationMessage(base, rotated), "$(sync) anthropic: rotated to key 2/2");
    assert.equal(
      rotationMessage(base, { ...rotated, message: "rate limited; rotated to key 2 of 2" }),
      "$(sync) anthropic: rate limited; rotated to key 2 of 2",
    );
    assert.equal(rotationMessage(rotated, rotated), undefined);
    assert.equal(rotationMessage(rotated, base), undefined);
  });
});
