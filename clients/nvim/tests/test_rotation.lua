-- A 429 on key 1 rotates to key 2: the statusline shows it; :LlmKeyReset brings key 1 back.
local H = dofile(vim.fs.joinpath(vim.fs.dirname(debug.getinfo(1, "S").source:sub(2)), "helpers.lua"))

H.setup()

local seen = {}
vim.api.nvim_create_autocmd("User", {
  pattern = "LlmSidecarStatus",
  callback = function(ev)
    if ev.data and ev.data.text then
      seen[#seen + 1] = ev.data.text
    end
  end,
})

H.test("after setup the statusline shows 🔑 1/2", function()
  H.wait_status("🔑 1/2")
end)

local buf
local notes_from
H.test("a scripted 429 on key 1 makes it 🔑 2/2 (rotated) while key 2 answers", function()
  H.script(H.key1, { { kind = "rate_limited", retry_after = 600 } })
  -- key 2 answers after a pause, so that the rotated state can be seen before its success
  H.script(H.key2, { { kind = "reply", content = { { type = "text", text = "Answer from key two." } }, stall = 3, stall_after = 0 } })
  notes_from = #H.notes + 1
  vim.cmd("LlmAsk Which key answers?")
  buf = vim.api.nvim_get_current_buf()
  H.wait_status("🔑 2/2 (rotated)", 5000)
  H.eq(require("llm_sidecar.ask").by_buf[buf].done, false, "still waiting for key 2")
  H.contains(vim.api.nvim_eval_statusline("%{v:lua.require'llm_sidecar'.statusline()}", {}).str, "🔑 2/2 (rotated)", "evaluated statusline")
end)

H.test("the answer comes from key 2, with no trace of the 429 in the buffer", function()
  H.wait(15000, function() return require("llm_sidecar.ask").by_buf[buf].done end, "the answer")
  local text = H.buf_text(buf)
  H.contains(text, "Answer from key two.\n\n---\n", "answer")
  H.contains(text, "key " .. H.fingerprint(H.key2), "footer names key 2")
  H.not_contains(text, "error", "buffer")
  -- after the success the marker clears, key 2 stays current (DESIGN.md); key 1 cools down
  H.wait_status("🔑 2/2", 5000)
  H.truthy(vim.tbl_contains(seen, "🔑 2/2 (rotated)"), "User LlmSidecarStatus saw the rotation: " .. vim.inspect(seen))
end)

H.test("the rotation is said once as a message, not only in the status line while streaming", function()
  local said = {}
  for i = notes_from, #H.notes do
    if H.notes[i].msg:find("anthropic: rotated to key 2 of 2", 1, true) then
      said[#said + 1] = H.notes[i]
    end
  end
  H.eq(#said, 1, "rotation messages")
  H.eq(said[1].level, vim.log.levels.INFO, "level")
end)

H.test(":LlmStatus shows key 1 cooling down for the model it was refused for, and the last rotation", function()
  vim.cmd("LlmStatus")
  H.wait(5000, function() return vim.api.nvim_win_get_config(0).relative ~= "" end, "the status float")
  local text = H.buf_text(0)
  vim.cmd("close")
  -- An API key's 429 is its model class's limit: key 1 still serves other models.
  H.contains(text, H.fingerprint(H.key1) .. "  api_key  env  ok", "key 1")
  H.contains(text, "       sonnet cooling down until ", "key 1's sonnet cooldown")
  H.contains(text, "▶ 2. " .. H.fingerprint(H.key2) .. "  api_key  env  ok", "key 2 current")
  H.contains(text, "  last rotation " .. os.date("%H"), "the rotation, in local time")
  H.contains(text, ": key 1 → key 2 of 2 (rotated to key 2 of 2)", "the rotation")
end)

H.test(":LlmKeyReset brings back 🔑 1/2 and the next answer comes from key 1", function()
  local from = #H.notes + 1
  vim.cmd("LlmKeyReset")
  H.wait_status("🔑 1/2")
  H.wait_note("back to the first key", from)
  H.script(H.key1, {})
  vim.cmd("LlmAsk Again?")
  local b = vim.api.nvim_get_current_buf()
  H.wait(15000, function() return require("llm_sidecar.ask").by_buf[b].done end, "the answer")
  H.contains(H.buf_text(b), "key " .. H.fingerprint(H.key1), "footer names key 1")
  H.eq(H.statusline(), "🔑 1/2", "statusline")
end)

H.test("every credential state the sidecar reports is said in words, a refused key's advice too", function()
  local out = vim.system({ H.python, "-c", "import json, typing, sidecar.rotation.status as r; print(json.dumps(typing.get_args(r.State)))" }):wait(30000)
  H.eq(out.code, 0, "asking the sidecar for its states: " .. tostring(out.stderr))
  local states = vim.json.decode(out.stdout)
  H.truthy(vim.tbl_contains(states, "refused"), "refused among " .. out.stdout)
  local status = require("llm_sidecar.status")
  for _, state in ipairs(states) do
    H.truthy(status.state_text[state], "words for " .. state)
    local lines = status.lines({ providers = { { provider = "anthropic", text = "🔑 1/1", index = 1, size = 1,
      credentials = { { fingerprint = "sk-ant-oat01-…a1b2", kind = "oauth", source = "pool", state = state, message = "advice " .. state } } } } })
    H.contains(table.concat(lines, "\n"), status.state_text[state] .. "  — advice " .. state, state)
  end
end)

H.test("the status view shows each key's windows, a low one flagged, per-model cooldowns and out of credit", function()
  local status = require("llm_sidecar.status")
  local lines = table.concat(status.lines({ providers = { { provider = "anthropic", text = "🔑 1/2 · 6% left", index = 1, size = 2,
    credentials = {
      { fingerprint = "sk-ant-api03-…a1b2", kind = "api_key", source = "pool", state = "ok",
        windows = {
          { name = "requests", account = false, model = "sonnet", limit = 50, remaining = 3, percentLeft = 6, resetAt = "2030-01-01T00:00:00Z" },
          { name = "unified-5h", account = true, utilization = 0.42, status = "allowed", percentLeft = 58 },
        },
        modelCooldowns = { { model = "opus", ["until"] = "2030-01-01T00:00:30Z", reason = "overloaded" } } },
      { fingerprint = "sk-ant-api03-…c3d4", kind = "api_key", source = "pool", state = "outOfCredit",
        message = "out of credit (Your credit balance is too low): add credit, then run `llm-sidecar key reset --provider anthropic`" },
    } } } }), "\n")
  H.contains(lines, "🔑 1/2 · 6% left", "the warning in the status text")
  H.contains(lines, "⚠ sonnet requests 3/50 left (6%) · resets ", "a low window")
  H.contains(lines, "account unified-5h 42% used, allowed", "a unified window")
  H.contains(lines, "opus cooling down until ", "a per-model cooldown")
  H.contains(lines, " (overloaded)", "why")
  H.contains(lines, "out of credit  — out of credit (Your credit balance is too low)", "out of credit in words")
end)

H.test("a success that says key 1 has 3 of 50 requests left shows in :LlmStatus and the statusline", function()
  vim.cmd("LlmKeyReset")
  H.wait_status("🔑 1/2")
  H.script(H.key1, { { kind = "reply", content = { { type = "text", text = "Low on headroom." } },
    headers = { ["anthropic-ratelimit-requests-limit"] = "50", ["anthropic-ratelimit-requests-remaining"] = "3",
      ["anthropic-ratelimit-requests-reset"] = "2030-01-01T00:00:00Z" } } })
  vim.cmd("LlmAsk How much is left?")
  local b = vim.api.nvim_get_current_buf()
  H.wait(15000, function() return require("llm_sidecar.ask").by_buf[b].done end, "the answer")
  H.wait_status("🔑 1/2 · 6% left", 5000)
  local got
  require("llm_sidecar.rpc").request("sidecar/status", nil, function(_, result) got = result end)
  H.wait(5000, function() return got ~= nil end, "sidecar/status")
  H.contains(table.concat(require("llm_sidecar.status").lines(got), "\n"), "requests 3/50 left (6%)", "the window")
end)

H.done()
