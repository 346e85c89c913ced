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

H.test(":LlmStatus shows key 1 cooling down and the last rotation", function()
  vim.cmd("LlmStatus")
  H.wait(5000, function() return vim.api.nvim_win_get_config(0).relative ~= "" end, "the status float")
  local text = H.buf_text(0)
  vim.cmd("close")
  H.contains(text, H.fingerprint(H.key1) .. "  api_key  env  cooling down until ", "key 1")
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

H.done()
