/**
 * The protocol layer against a real sidecar process over stdio (vscode-jsonrpc,
 * LSP framing): what the extension's commands and status bar rely on.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { PolicyParams } from "../../src/protocol";
import { describeError } from "../../src/status";
import { startSidecar, type Sidecar } from "./helpers";

const K1 = "sk-ant-api03-vscodetest-key-one-1111";
const K2 = "sk-ant-api03-vscodetest-key-two-2222";
const K3 = "sk-ant-api03-vscodetest-key-three-3333";
const SECRETS = [K1, K2, K3];

function assertNoSecrets(value: unknown): void {
  const text = JSON.stringify(value);
  for (const s of SECRETS) assert.ok(!text.includes(s), `a secret leaked into ${text}`);
}

describe("sidecar over stdio", () => {
  let sc: Sidecar;

  before(async () => {
    sc = await startSidecar({ ANTHROPIC_API_KEYS: `${K1},${K2}` });
  });
  after(async () => {
    await sc?.close();
  });

  it("initializes as llm-sidecar", () => {
    assert.equal(sc.initializeResult.serverInfo?.name, "llm-sidecar");
  });

  it("sends a didChangeStatus per provider with credentials after initialized", async () => {
    const s = await sc.waitForStatus((s) => s.provider === "anthropic");
    assert.equal(s.text, "🔑 1/2");
    assert.equal(s.kind, "Normal");
    assert.equal(s.index, 1);
    assert.equal(s.size, 2);
    assert.equal(s.rotated, false);
  });

  it("status: credentials by fingerprint, never the secret", async () => {
    const result = await sc.api.status("anthropic");
    assert.deepEqual(result.problems, []);
    assert.equal(result.providers.length, 1);
    const p = result.providers[0];
    assert.equal(p.text, "🔑 1/2");
    assert.equal(p.credentials?.length, 2);
    for (const c of p.credentials!) {
      assert.equal(c.source, "env");
      assert.equal(c.state, "ok");
      assert.match(c.fingerprint, /…/);
    }
    assertNoSecrets(result);
  });

  it("status of a provider without credentials", async () => {
    const result = await sc.api.status("openai");
    assert.ok(result.providers.length <= 1);
    if (result.providers.length === 1) {
      assert.equal(result.providers[0].size, 0);
      assert.equal(result.providers[0].kind, "Inactive");
    }
  });

  it("keyAdd adds to the pool and pushes a didChangeStatus", async () => {
    const since = sc.statuses.length;
    const result = await sc.api.keyAdd({ provider: "anthropic", key: K3 });
    assert.equal(result.added, true);
    assert.equal(result.credential.source, "pool");
    assert.equal(result.status.size, 3);
    assert.equal(result.status.text, "🔑 1/3");
    assertNoSecrets(result);
    const pushed = await sc.waitForStatus((s) => s.provider === "anthropic" && s.size === 3, 5000, since);
    assert.equal(pushed.text, "🔑 1/3");

    const again = await sc.api.keyAdd({ provider: "anthropic", key: K3 });
    assert.equal(again.added, false);
  });

  it("keyList lists fingerprints only", async () => {
    const list = await sc.api.keyList("anthropic");
    assert.equal(list.provider, "anthropic");
    assert.equal(list.credentials.length, 3);
    // The key added while an env key was in use goes after it: the one in use stays first.
    assert.deepEqual(
      list.credentials.map((c) => c.source),
      ["env", "env", "pool"],
    );
    assertNoSecrets(list);
  });

  it("keyRemove by id (as the Remove Key quick pick does), and env keys cannot be removed", async () => {
    const list = await sc.api.keyList("anthropic");
    const pooled = list.credentials.find((c) => c.source === "pool")!;
    const since = sc.statuses.length;
    const result = await sc.api.keyRemove({ provider: "anthropic", fingerprint: pooled.id });
    assert.equal(result.removed.id, pooled.id);
    assert.equal(result.status.size, 2);
    await sc.waitForStatus((s) => s.provider === "anthropic" && s.size === 2, 5000, since);

    const env = list.credentials.find((c) => c.source === "env")!;
    await assert.rejects(sc.api.keyRemove({ provider: "anthropic", fingerprint: env.id }), (err: { message: string }) => {
      assert.match(err.message, /environment|variable|env/i);
      return true;
    });
  });

  it("keyReset returns the provider's status", async () => {
    const status = await sc.api.keyReset("anthropic");
    assert.equal(status.provider, "anthropic");
    assert.equal(status.index, 1);
    assert.equal(status.text, "🔑 1/2");
    assert.equal(status.rotated, false);
  });

  it("policy is read, then set, and a policy it does not know names the field", async () => {
    assert.equal((await sc.api.policy({ provider: "anthropic" })).policy, "sticky");
    const set = await sc.api.policy({ provider: "anthropic", policy: "primary" });
    assert.equal(set.policy, "primary");
    assert.equal(set.status.provider, "anthropic");
    assert.equal((await sc.api.policy({ provider: "anthropic" })).policy, "primary");
    await sc.api.policy({ provider: "anthropic", policy: "sticky" }); // as the other tests expect
    const bad = { provider: "anthropic", policy: "random" } as unknown as PolicyParams;
    await assert.rejects(sc.api.policy(bad), (err: { code: number; data?: { field?: string } }) => {
      assert.equal(err.code, -32602);
      assert.equal(err.data?.field, "policy");
      return true;
    });
  });

  it("invalid params name the field; the message is what the user sees", async () => {
    await assert.rejects(sc.api.keyList("no-such-provider"), (err: { code: number; data?: { field?: string } }) => {
      assert.equal(err.code, -32602);
      assert.equal(err.data?.field, "provider");
      assert.match(describeError(err), /unknown provider/);
      return true;
    });
  });

  it("an unknown method is -32601, explained as 'update the sidecar'", async () => {
    await assert.rejects(sc.connection.sendRequest("sidecar/noSuchThing", {}), (err: { code: number }) => {
      assert.equal(err.code, -32601);
      assert.match(describeError(err, "sidecar/noSuchThing"), /update it/);
      return true;
    });
  });
});
