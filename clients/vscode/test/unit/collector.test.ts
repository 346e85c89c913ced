import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { StreamCollector, planEdit, type Rendered } from "../../src/collector";
import type { StreamDelta } from "../../src/protocol";

const d = (delta: Omit<StreamDelta, "streamId"> & Record<string, unknown>): StreamDelta =>
  ({ streamId: "s1", ...delta }) as StreamDelta;

/** Applies plans to a string the way the editor applies them to a document. */
function render(view: { text: string; rendered: Rendered }, c: StreamCollector): void {
  const plan = planEdit(view.rendered, c);
  if (!plan) return;
  view.text = view.text.slice(0, plan.from) + plan.insert;
  view.rendered = plan.next;
}

describe("StreamCollector", () => {
  it("appends text deltas in order", () => {
    const c = new StreamCollector();
    c.apply(d({ kind: "text", text: "Hel" }));
    c.apply(d({ kind: "text", text: "lo!" }));
    c.apply(d({ kind: "usage", usage: { inputTokens: 8, outputTokens: 3, cacheReadTokens: 0, cacheWriteTokens: 0 } }));
    assert.equal(c.text, "Hello!");
    assert.equal(c.usage?.outputTokens, 3);
    assert.equal(c.deltas, 3);
  });

  it("collects thinking, signature and tool calls", () => {
    const c = new StreamCollector();
    c.apply(d({ kind: "thinking", text: "hmm " }));
    c.apply(d({ kind: "thinking", text: "ok" }));
    c.apply(d({ kind: "signature", signature: "sig" }));
    c.apply(d({ kind: "toolUseStart", id: "t1", name: "read" }));
    c.apply(d({ kind: "toolInputDelta", id: "t1", json: '{"pa' }));
    c.apply(d({ kind: "toolInputDelta", id: "t1", json: 'th":"a"}' }));
    c.apply(d({ kind: "toolUseStop", id: "t1" }));
    assert.equal(c.thinking, "hmm ok");
    assert.equal(c.signature, "sig");
    assert.deepEqual(c.tools, [{ id: "t1", name: "read", json: '{"path":"a"}', done: true }]);
    assert.deepEqual(JSON.parse(c.tools[0].json), { path: "a" });
  });

  it("a restart delta voids everything streamed so far", () => {
    const c = new StreamCollector();
    c.apply(d({ kind: "text", text: "partial answer from key 1" }));
    c.apply(d({ kind: "toolUseStart", id: "t1", name: "x" }));
    c.apply(d({ kind: "restart", attempt: 2, reason: "rate limited" }));
    assert.equal(c.text, "");
    assert.deepEqual(c.tools, []);
    assert.equal(c.generation, 1);
    assert.deepEqual(c.restarts, [{ attempt: 2, reason: "rate limited" }]);
    c.apply(d({ kind: "text", text: "Full answer" }));
    assert.equal(c.text, "Full answer");
  });

  it("a fallback delta voids what was streamed and records where the answer now comes from", () => {
    const c = new StreamCollector();
    c.apply(d({ kind: "text", text: "cut off by a rate limit" }));
    c.apply(d({ kind: "fallback", provider: "openrouter", model: "anthropic/claude-sonnet-4.5", reason: "all rate limited" }));
    assert.equal(c.text, "");
    assert.equal(c.generation, 1);
    assert.deepEqual(c.fallbacks, [{ provider: "openrouter", model: "anthropic/claude-sonnet-4.5", reason: "all rate limited" }]);
    assert.deepEqual(c.restarts, []);
  });

  it("ignores delta kinds it does not know", () => {
    const c = new StreamCollector();
    c.apply(d({ kind: "somethingNew" as "text", text: "x" }) as StreamDelta);
    assert.equal(c.text, "");
  });

  it("finish keeps the streamed text when it matches, and replaces it when not", () => {
    const c = new StreamCollector();
    c.apply(d({ kind: "text", text: "Hello" }));
    c.finish({ streamId: "s1", model: "m", content: [{ type: "text", text: "Hello" }], stopReason: "end_turn", usage: { inputTokens: 1, outputTokens: 1, cacheReadTokens: 0, cacheWriteTokens: 0 } });
    assert.equal(c.generation, 0);
    c.finish({ streamId: "s1", model: "m", content: [{ type: "text", text: "Hel" }, { type: "tool_use", id: "t", name: "x", input: {} }, { type: "text", text: "lo!" }], stopReason: "end_turn", usage: { inputTokens: 1, outputTokens: 2, cacheReadTokens: 0, cacheWriteTokens: 0 } });
    assert.equal(c.text, "Hello!");
    assert.equal(c.generation, 1);
  });

  it("finish without content (omitContent) keeps what was streamed", () => {
    const c = new StreamCollector();
    c.apply(d({ kind: "text", text: "Hello" }));
    c.finish({ streamId: "s1", model: "m", stopReason: "end_turn", usage: { inputTokens: 1, outputTokens: 1, cacheReadTokens: 0, cacheWriteTokens: 0 } });
    assert.equal(c.text, "Hello");
    assert.equal(c.generation, 0);
  });
});

describe("planEdit", () => {
  it("appends while the text grows and does nothing when up to date", () => {
    const c = new StreamCollector();
    const view = { text: "", rendered: { generation: 0, length: 0 } };
    assert.equal(planEdit(view.rendered, c), undefined);
    c.apply(d({ kind: "text", text: "Hel" }));
    assert.deepEqual(planEdit(view.rendered, c), { from: 0, insert: "Hel", next: { generation: 0, length: 3 } });
    render(view, c);
    c.apply(d({ kind: "text", text: "lo" }));
    assert.deepEqual(planEdit(view.rendered, c), { from: 3, insert: "lo", next: { generation: 0, length: 5 } });
    render(view, c);
    assert.equal(view.text, "Hello");
    assert.equal(planEdit(view.rendered, c), undefined);
  });

  it("replaces the whole answer after a restart, even when the new text is longer", () => {
    const c = new StreamCollector();
    const view = { text: "", rendered: { generation: 0, length: 0 } };
    c.apply(d({ kind: "text", text: "Partial" }));
    render(view, c);
    assert.equal(view.text, "Partial");
    c.apply(d({ kind: "restart", attempt: 2 }));
    c.apply(d({ kind: "text", text: "Another, longer answer" }));
    const plan = planEdit(view.rendered, c);
    assert.equal(plan?.from, 0);
    render(view, c);
    assert.equal(view.text, "Another, longer answer");
  });

  it("clears the partial text when a restart arrives before any new text", () => {
    const c = new StreamCollector();
    const view = { text: "", rendered: { generation: 0, length: 0 } };
    c.apply(d({ kind: "text", text: "Partial" }));
    render(view, c);
    c.apply(d({ kind: "restart" }));
    render(view, c);
    assert.equal(view.text, "");
    c.apply(d({ kind: "text", text: "New" }));
    render(view, c);
    assert.equal(view.text, "New");
  });
});
