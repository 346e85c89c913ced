/**
 * A login's end as the extension hears it: `sidecar/didEndLogin`, from a real
 * sidecar over stdio; `sidecar/didChangeStatus` stays the provider's status only.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { LoginEnded } from "../../src/protocol";
import { startSidecar, type Sidecar } from "./helpers";

const K1 = "sk-ant-api03-vscodetest-login-key-1111";

function nextEnd(sc: Sidecar, loginId: string, ms = 5000): Promise<LoginEnded> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no didEndLogin for ${loginId} in ${ms} ms`)), ms);
    const sub = sc.api.onDidEndLogin((e) => {
      if (e.loginId !== loginId) return;
      clearTimeout(timer);
      sub.dispose();
      resolve(e);
    });
  });
}

describe("login outcomes", () => {
  let sc: Sidecar;

  before(async () => {
    // The callback takes 53692, or a free port when another run holds it.
    sc = await startSidecar({ ANTHROPIC_API_KEY: K1 });
    await sc.waitForStatus((s) => s.provider === "anthropic");
  });
  after(async () => {
    await sc?.close();
  });

  it("a cancelled login ends with didEndLogin, and no status carries the login", async () => {
    const since = sc.statuses.length;
    const started = await sc.api.login({ provider: "anthropic" });
    assert.ok(started.message && started.message.includes("anthropic"), "what to do now");
    const end = nextEnd(sc, started.loginId);
    assert.deepEqual(await sc.api.loginCancel(started.loginId), { cancelled: true });
    const ended = await end;
    assert.deepEqual(ended, {
      loginId: started.loginId,
      provider: "anthropic",
      profile: "default",
      outcome: "cancelled",
      message: "login to anthropic cancelled",
    });
    for (const s of sc.statuses.slice(since)) assert.equal(s.message, undefined, JSON.stringify(s));
  });

  it("a second login for the profile supersedes the first", async () => {
    const first = await sc.api.login({ provider: "anthropic", profile: "work" });
    const end = nextEnd(sc, first.loginId);
    const second = await sc.api.login({ provider: "anthropic", profile: "work" });
    const ended = await end;
    assert.equal(ended.outcome, "superseded");
    assert.equal(ended.profile, "work");
    assert.match(ended.message, /superseded/);
    await sc.api.loginCancel(second.loginId);
  });
});
