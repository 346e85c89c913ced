import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, it } from "node:test";
import type { CredentialInfo, ProviderStatus } from "../../src/protocol";
import {
  credentialRows,
  describeError,
  describeState,
  describeWindow,
  formatIn,
  mdEscape,
  statusBackground,
  statusBarText,
  tooltipMarkdown,
  noteRotation,
  stateIcon,
} from "../../src/status";
import { sidecarPython } from "./helpers";

const now = new Date(2026, 10, 22, 14, 0, 0);
const at = (h: number, m: number, s = 0) => new Date(2026, 10, 22, h, m, s).toISOString();

const creds: CredentialInfo[] = [
  { id: "anthropic:pool-1a2b3c4d", kind: "api_key", source: "pool", fingerprint: "sk-ant-api03-…a1b2", state: "coolingDown", cooldownUntil: at(14, 5), message: "Number of requests has exceeded your rate limit" },
  { id: "anthropic:work", kind: "oauth", source: "profile", fingerprint: "sk-ant-oat01-…c3d4", state: "ok", expiresAt: at(20, 0) },
  { id: "env:ANTHROPIC_API_KEY", kind: "api_key", source: "env", fingerprint: "sk-ant-api03-…e5f6", state: "ok" },
];
const rotated: ProviderStatus = {
  provider: "anthropic", kind: "Warning", text: "🔑 2/3 (rotated)", index: 2, size: 3, rotated: true,
  message: "rotated to key 2 of 3", credentials: creds,
};

describe("status bar", () => {
  it("shows the sidecar's text", () => {
    assert.equal(statusBarText({ provider: "anthropic", kind: "Normal", text: "🔑 1/3", index: 1, size: 3, rotated: false }), "🔑 1/3");
    assert.equal(statusBarText(rotated), "🔑 2/3 (rotated)");
    assert.equal(statusBarText(undefined), "🔑 …");
  });

  it("colours warnings and errors", () => {
    assert.equal(statusBackground("Normal"), undefined);
    assert.equal(statusBackground("Inactive"), undefined);
    assert.equal(statusBackground("Warning"), "statusBarItem.warningBackground");
    assert.equal(statusBackground("Error"), "statusBarItem.errorBackground");
  });
});

describe("credential states", () => {
  it("says when a cooldown ends", () => {
    assert.equal(describeState(creds[0], now), "cooling down until 14:05:00 (in 5m)");
    assert.equal(describeState(creds[1], now), "ok, expires 20:00:00");
    assert.equal(describeState(creds[2], now), "ok");
    assert.equal(describeState({ ...creds[2], state: "rejected" }, now), "rejected");
    assert.equal(describeState({ ...creds[1], state: "expiring", expiresAt: at(19, 0) }, now), "expires in 5h (19:00:00)");
  });

  it("formats durations", () => {
    assert.equal(formatIn(at(14, 0, 42), now), "42s");
    assert.equal(formatIn(at(13, 0), now), "0s");
  });
});

describe("tooltip", () => {
  it("lists every credential with fingerprint, source and state, marking the one in use", () => {
    const md = tooltipMarkdown([rotated], [], now);
    assert.match(md, /\*\*anthropic\*\* 🔑 2\/3 \\\(rotated\\\)/);
    assert.match(md, /_rotated to key 2 of 3_/);
    const rows = md.split("\n").filter((l) => l.startsWith("| ") && l.includes("`sk-"));
    assert.equal(rows.length, 3);
    assert.match(rows[0], /^\|  \| `sk-ant-api03-…a1b2` \| pool \| \$\(clock\) cooling down until 14:05:00 \\\(in 5m\\\) \|$/);
    assert.match(rows[1], /^\| ▶ \| `sk-ant-oat01-…c3d4` \| login \|/);
    assert.match(rows[2], /\| environment \| \$\(pass\) ok \|$/);
  });

  it("shows each key's windows (limit, remaining, reset), a low one flagged, and per-model cooldowns", () => {
    const low: CredentialInfo = {
      ...creds[1],
      windows: [
        { name: "requests", account: false, model: "sonnet", limit: 50, remaining: 3, resetAt: at(14, 1), percentLeft: 6 },
        { name: "unified-5h", account: true, utilization: 0.42, status: "allowed", resetAt: at(18, 0), percentLeft: 58 },
      ],
      modelCooldowns: [{ model: "opus", until: at(14, 0, 30), reason: "overloaded" }],
    };
    const status: ProviderStatus = {
      provider: "anthropic", kind: "Warning", text: "🔑 1/1 · 6% left", index: 1, size: 1, rotated: false, credentials: [low],
    };
    const md = tooltipMarkdown([status], [], now);
    assert.ok(md.includes("**anthropic** 🔑 1/1 · 6% left"), md);
    assert.ok(md.includes("$(warning) sonnet requests 3/50 left \\(6%\\) · resets 14:01:00"), md);
    assert.ok(md.includes("account unified-5h 42% used, allowed · resets 18:00:00"), md);
    assert.ok(md.includes("$(clock) opus cooling down until 14:00:30 \\(overloaded\\)"), md);
    assert.equal(describeWindow(low.windows![0], now), "sonnet requests 3/50 left (6%) · resets 14:01:00");
  });

  it("says out of credit, with the provider's words and what to do", () => {
    const broke: CredentialInfo = {
      ...creds[2], state: "outOfCredit",
      message: "out of credit (You exceeded your current quota): add credit or allow extra usage with openai, then run `llm-sidecar key reset --provider openai`",
    };
    assert.equal(describeState(broke, now), "out of credit");
    const md = tooltipMarkdown([{ provider: "openai", kind: "Error", text: "🔑 out of credit", index: 1, size: 1, rotated: false, credentials: [broke] }], [], now);
    assert.ok(md.includes("$(credit-card) out of credit: out of credit \\(You exceeded your current quota\\)"), md);
    assert.ok(md.includes("key reset --provider openai"), md);
  });

  it("tells what to do when there are no credentials, and lists problems", () => {
    const md = tooltipMarkdown([], ["pool.json: corrupt file set aside"], now);
    assert.match(md, /Add Key to Pool/);
    assert.match(md, /\$\(warning\) pool\.json: corrupt file set aside/);
  });

  it("escapes Markdown in server text", () => {
    assert.equal(mdEscape("a|b *c* [d](e)\nf"), "a\\|b \\*c\\* \\[d\\]\\(e\\) f");
  });
});

describe("quick pick rows", () => {
  it("one row per credential, the one in use said so", () => {
    const rows = credentialRows(rotated, now);
    assert.equal(rows.length, 3);
    assert.equal(rows[1].label, "$(pass) sk-ant-oat01-…c3d4");
    assert.match(rows[1].description!, /^in use · login · ok/);
    assert.equal(rows[0].credential?.id, "anthropic:pool-1a2b3c4d");
    assert.equal(rows[0].detail, "Number of requests has exceeded your rate limit");
  });
});

describe("errors", () => {
  it("says what to do", () => {
    assert.match(describeError({ code: -32601, message: "Method not found" }, "sidecar/login"), /does not support sidecar\/login yet: update it/);
    assert.match(describeError({ code: -32001, message: "no credentials for anthropic." }), /Add Key to Pool/);
    assert.equal(describeError({ code: -32004, message: "upstream 404: model not found" }), "upstream 404: model not found");
    assert.equal(describeError(new Error("boom")), "boom");
  });
});

describe("every credential state the sidecar reports", () => {
  // Asked of the sidecar itself, so that a state it gains is not shown raw here.
  const states = JSON.parse(
    execFileSync(sidecarPython(), ["-c", "import json, typing, sidecar.rotation.status as r; print(json.dumps(typing.get_args(r.State)))"], {
      encoding: "utf8",
    }),
  ) as string[];

  it("has an icon and words, and a refused or rejected key says what to do", () => {
    assert.ok(states.includes("refused"), `states: ${states}`);
    for (const state of states) {
      const cred: CredentialInfo = { id: "anthropic:pool-1", kind: "oauth", source: "pool", fingerprint: "sk-ant-oat01-…a1b2", state, message: `advice for ${state}` };
      assert.notEqual(stateIcon(state), "$(question)", `icon for ${state}`);
      const words = describeState(cred, now);
      assert.ok(words.length > 0, `words for ${state}`);
      const tip = tooltipMarkdown([{ provider: "anthropic", kind: "Warning", text: "🔑 1/1", index: 1, size: 1, rotated: false, credentials: [cred] }], [], now);
      if (state === "refused" || state === "rejected" || state === "outOfCredit") assert.ok(tip.includes(`advice for ${state}`), tip);
    }
    assert.equal(describeState({ ...creds[0], state: "refused" }, now), "refused for this use");
  });
});

describe("a rotation stays visible after the answer", () => {
  it("is noted when the sidecar rotates, and the tooltip says so once (rotated) is gone", () => {
    const before = { provider: "anthropic", kind: "Normal" as const, text: "🔑 1/3", index: 1, size: 3, rotated: false };
    const during = { ...before, kind: "Warning" as const, text: "🔑 2/3 (rotated)", index: 2, rotated: true, message: "rotated to key 2 of 3" };
    const after = { ...before, text: "🔑 2/3", index: 2 };
    assert.equal(noteRotation(before, after, now), undefined);
    const r = noteRotation(before, during, now);
    assert.ok(r);
    assert.equal(noteRotation(during, during, now), undefined, "the same rotation again is not a new one");
    const tip = tooltipMarkdown([{ ...after, credentials: creds }], [], now, new Map([["anthropic", r]]));
    assert.ok(tip.includes("last rotation 14:00:00: key 1 → key 2 of 3 \\(rotated to key 2 of 3\\)"), tip);
    assert.ok(!tooltipMarkdown([{ ...after, credentials: creds }], [], now).includes("last rotation"));
  });
});
