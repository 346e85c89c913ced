/**
 * sidecar/stream through the protocol layer, against a real sidecar pointed at
 * the fake provider (python -m sidecar.fake). Skipped, saying so, while the
 * sidecar does not implement sidecar/stream yet.
 */
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { CancellationTokenSource } from "vscode-jsonrpc/node";
import { StreamCollector, answerText, planEdit, type Rendered } from "../../src/collector";
import type { StreamDelta } from "../../src/protocol";
import { startFake, startSidecar, supports, withTimeout, type Fake, type Sidecar } from "./helpers";

const K1 = "sk-ant-api03-vscodestream-one-1111";
const K2 = "sk-ant-api03-vscodestream-two-2222";
const MODEL = "claude-sonnet-4-5";
const ASK = { provider: "anthropic", model: MODEL, maxTokens: 256, messages: [{ role: "user" as const, content: "Hello" }] };
const FAKE_TEXT = `Hello from the fake ${MODEL}. Your last message was 5 characters long.`;

describe("sidecar/stream against the fake provider", () => {
  let fake: Fake | undefined;
  let sc: Sidecar | undefined;
  let skip: string | undefined;

  before(async () => {
    try {
      fake = await startFake(["--key", K1, "--key", K2]);
    } catch (err) {
      skip = `the fake provider (python -m sidecar.fake) did not start: ${(err as Error).message}`;
      return;
    }
    sc = await startSidecar({ ANTHROPIC_API_KEYS: `${K1},${K2}`, ANTHROPIC_BASE_URL: fake.url });
    if (!(await supports(sc, "sidecar/stream", {}))) skip = "the sidecar does not implement sidecar/stream yet";
  });
  after(async () => {
    await sc?.close();
    await fake?.close();
  });
  beforeEach(async () => {
    if (!skip) {
      await fake!.control("/_fake/reset");
      await sc!.api.keyReset("anthropic");
    }
  });

  it("collects the deltas into the fake's text", async (t) => {
    if (skip) return t.skip(skip);
    // A trickle, so that the sidecar cannot merge the text into one delta.
    await fake!.control("/_fake/script", { key: K1, steps: [{ kind: "reply", chunk: 8, interval: 0.02 }] });
    const seen: StreamDelta[] = [];
    const view = { text: "", rendered: { generation: 0, length: 0 } as Rendered };
    const { result, collector } = await withTimeout(
      sc!.api.stream(ASK, {
        onDelta: (d, c) => {
          seen.push(d);
          const plan = planEdit(view.rendered, c);
          if (plan) {
            view.text = view.text.slice(0, plan.from) + plan.insert;
            view.rendered = plan.next;
          }
        },
      }),
      20000,
      "sidecar/stream",
    );
    assert.equal(answerText(result.content ?? []), FAKE_TEXT);
    assert.equal(collector.text, FAKE_TEXT);
    assert.equal(view.text, FAKE_TEXT, "the text built from deltas alone");
    assert.ok(seen.filter((d) => d.kind === "text").length > 1, "streamed in several deltas");
    assert.ok(seen.every((d) => d.streamId === result.streamId));
    assert.equal(result.stopReason, "end_turn");
    assert.ok(result.usage.outputTokens > 0);
  });

  it("omitContent: the answer comes in the deltas only, not again in the result", async (t) => {
    if (skip) return t.skip(skip);
    const { result, collector } = await withTimeout(sc!.api.stream({ ...ASK, omitContent: true }), 20000, "sidecar/stream");
    assert.equal(collector.text, FAKE_TEXT);
    assert.equal(result.content, undefined);
    assert.ok(!JSON.stringify(result).includes(FAKE_TEXT));
    assert.equal(result.stopReason, "end_turn");
  });

  it("a 429 on the first key: answered by the second, the status turns (rotated)", async (t) => {
    if (skip) return t.skip(skip);
    await fake!.control("/_fake/script", { key: K1, steps: [{ kind: "rate_limited", retry_after: 60 }] });
    const since = sc!.statuses.length;
    const { result, collector } = await withTimeout(sc!.api.stream(ASK), 20000, "sidecar/stream");
    assert.equal(collector.text, FAKE_TEXT);
    assert.equal(collector.restarts.length, 0, "a replay before the first delta is invisible");
    assert.ok(result.credential?.fingerprint.endsWith("2222"), JSON.stringify(result.credential));
    const s = await sc!.waitForStatus((s) => s.provider === "anthropic" && s.rotated, 5000, since);
    assert.equal(s.text, "🔑 2/2 (rotated)");
    assert.equal(s.kind, "Warning");
  });

  it("a failure after deltas went out: a restart delta clears the partial text", async (t) => {
    if (skip) return t.skip(skip);
    await fake!.control("/_fake/script", {
      key: K1,
      steps: [{ kind: "reply", content: "This partial answer will be void.", chunk: 4, error_after: 6, error_type: "overloaded_error" }],
    });
    const collector = new StreamCollector();
    const textBeforeRestart: string[] = [];
    const { result } = await withTimeout(
      sc!.api.stream(ASK, {
        collector,
        onDelta: (d, c) => {
          if (d.kind === "restart") textBeforeRestart.push(c.text);
        },
      }),
      20000,
      "sidecar/stream",
    );
    assert.equal(collector.restarts.length, 1);
    assert.deepEqual(textBeforeRestart, [""], "the collector is empty right after the restart");
    assert.equal(collector.text, FAKE_TEXT);
    assert.equal(answerText(result.content ?? []), FAKE_TEXT);
    assert.ok(!collector.text.includes("void"));
  });

  it("cancelling sends $/cancelRequest: -32800", async (t) => {
    if (skip) return t.skip(skip);
    await fake!.control("/_fake/script", {
      key: K1,
      steps: [{ kind: "reply", content: "slow ".repeat(200), chunk: 5, interval: 0.05 }],
    });
    const source = new CancellationTokenSource();
    const promise = sc!.api.stream(ASK, {
      token: source.token,
      onDelta: (d) => {
        if (d.kind === "text") source.cancel();
      },
    });
    await assert.rejects(withTimeout(promise, 20000, "cancelled sidecar/stream"), (err: { code?: number }) => {
      assert.equal(err.code, -32800);
      return true;
    });
  });
});
