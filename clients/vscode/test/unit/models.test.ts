/**
 * sidecar/models through the protocol layer (what the model picker shows), and
 * the providers the extension offers in package.json against the sidecar's own
 * catalog, both asked of the real sidecar.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { sidecarPython, startFake, startSidecar, type Fake, type Sidecar } from "./helpers";

const KEY = "sk-ant-api03-vscodemodels-one-1111";

describe("sidecar/models against the fake provider", () => {
  let fake: Fake;
  let sc: Sidecar;

  before(async () => {
    fake = await startFake(["--key", KEY]);
    sc = await startSidecar({ ANTHROPIC_API_KEYS: KEY, ANTHROPIC_BASE_URL: fake.url });
  });
  after(async () => {
    await sc?.close();
    await fake?.close();
  });

  it("lists the provider's own models for a provider with a key", async () => {
    const result = await sc.api.models("anthropic");
    assert.deepEqual(result.errors, []);
    assert.ok(result.models.length > 0);
    for (const m of result.models) {
      assert.equal(m.provider, "anthropic");
      assert.equal(m.source, "provider");
    }
    assert.ok(result.models.some((m) => m.id.startsWith("claude-sonnet-4-5")));
    assert.ok(!JSON.stringify(result).includes(KEY));
  });

  it("offers the known models of a provider without credentials", async () => {
    const result = await sc.api.models("openai");
    assert.ok(result.models.length > 0);
    assert.ok(result.models.every((m) => m.provider === "openai" && m.source === "known"));
  });

  it("lists every provider when asked for none", async () => {
    const result = await sc.api.models();
    const providers = new Set(result.models.map((m) => m.provider));
    assert.ok(providers.has("anthropic") && providers.has("openai"));
  });
});

describe("package.json", () => {
  it("offers exactly the sidecar's providers, in its order", () => {
    // out/test/unit → clients/vscode
    const pkg = JSON.parse(readFileSync(resolve(__dirname, "..", "..", "..", "package.json"), "utf8"));
    const offered: string[] = pkg.contributes.configuration.properties["llmSidecar.provider"].enum;
    const catalog = JSON.parse(
      execFileSync(sidecarPython(), ["-c", "import json, sidecar.catalog as c; print(json.dumps(c.provider_names()))"], {
        encoding: "utf8",
      }),
    ) as string[];
    assert.deepEqual(offered, catalog);
  });
});
