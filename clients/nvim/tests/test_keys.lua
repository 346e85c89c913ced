-- :LlmStatus, :LlmKeyAdd, :LlmKeyRemove, :LlmKeyReset as a user sees them.
local H = dofile(vim.fs.joinpath(vim.fs.dirname(debug.getinfo(1, "S").source:sub(2)), "helpers.lua"))

local KEY3 = "sk-ant-api03-nvimtest-key-three-3333"
local FP1, FP2, FP3 = H.fingerprint(H.key1), H.fingerprint(H.key2), H.fingerprint(KEY3)

H.setup()

H.test("the statusline shows the two environment keys", function()
  H.wait_status("🔑 1/2")
end)

local function open_status()
  local before = vim.api.nvim_get_current_win()
  vim.cmd("LlmStatus")
  H.wait(5000, function()
    local win = vim.api.nvim_get_current_win()
    return win ~= before and vim.api.nvim_win_get_config(win).relative ~= ""
  end, "the :LlmStatus float")
  local text = H.buf_text(0)
  vim.cmd("close")
  H.eq(vim.api.nvim_get_current_win(), before, "window after closing the float")
  return text
end

H.test(":LlmStatus shows each credential by fingerprint and state, never the secret", function()
  local text = open_status()
  H.contains(text, "anthropic  🔑 1/2", "status view")
  H.contains(text, "1. " .. FP1 .. "  api_key  env  ok", "status view")
  H.contains(text, "2. " .. FP2 .. "  api_key  env  ok", "status view")
  H.contains(text, "▶ 1.", "current key marked")
  H.not_contains(text, H.key1, "status view")
  H.not_contains(text, H.key2, "status view")
end)

H.test(":LlmKeyAdd reads the key with inputsecret and adds it: 🔑 1/3", function()
  local prompts = {}
  local real_inputsecret = vim.fn.inputsecret
  vim.fn.inputsecret = function(prompt)
    prompts[#prompts + 1] = prompt
    return KEY3 .. "  "
  end
  local from = #H.notes + 1
  vim.cmd("LlmKeyAdd")
  vim.fn.inputsecret = real_inputsecret
  H.eq(#prompts, 1, "inputsecret prompts")
  H.contains(prompts[1], "anthropic API key", "prompt")
  H.wait_status("🔑 1/3")
  local note = H.wait_note("added " .. FP3, from)
  H.eq(note.level, vim.log.levels.INFO, "level")
  H.contains(note.msg, "🔑 1/3", "message")
  H.not_contains(H.notes_text(), KEY3, "notifications")
  for _, hist in ipairs({ "cmd", "input", "search", "expr" }) do
    for i = 1, vim.fn.histnr(hist) do
      H.not_contains(vim.fn.histget(hist, i), KEY3, hist .. " history")
    end
  end
  -- adding a key never moves the one in use: the new key goes after it (issue 11, item 15)
  local view = open_status()
  H.contains(view, "▶ 1. " .. FP1 .. "  api_key  env  ok", "status view")
  H.contains(view, "3. " .. FP3 .. "  api_key  pool  ok", "status view")
end)

H.test("adding the same key again says so and changes nothing", function()
  vim.fn.inputsecret = function() return KEY3 end
  local from = #H.notes + 1
  vim.cmd("LlmKeyAdd")
  local note = H.wait_note("already in the anthropic pool", from)
  H.contains(note.msg, FP3, "message")
  H.eq(H.statusline(), "🔑 1/3", "statusline")
end)

H.test(":LlmKeyAdd with an empty answer adds nothing", function()
  vim.fn.inputsecret = function() return "" end
  local from = #H.notes + 1
  vim.cmd("LlmKeyAdd")
  H.wait_note("nothing added", from)
  vim.wait(300)
  H.eq(H.statusline(), "🔑 1/3", "statusline")
end)

H.test(":LlmKeyAdd refuses a key on the command line (it would stay in the history)", function()
  local from = #H.notes + 1
  vim.fn.inputsecret = function() error("must not prompt") end
  vim.cmd("LlmKeyAdd sk-ant-api03-typed-on-the-command-line-9999")
  local note = H.wait_note("takes no key on the command line", from)
  H.eq(note.level, vim.log.levels.WARN, "level")
  vim.wait(300)
  H.eq(H.statusline(), "🔑 1/3", "statusline")
end)

H.test(":LlmKeyAdd login without a login names what to do", function()
  local from = #H.notes + 1
  vim.cmd("LlmKeyAdd login")
  H.wait(5000, function() return #H.notes >= from end, "a notification")
  local note = H.notes[from]
  H.contains(note.msg, "Adding the current login failed", "message")
  H.truthy(note.level >= vim.log.levels.WARN, "level is WARN or ERROR")
  H.contains(note.msg, ":Llm", "names a command to run")
end)

H.test(":LlmKeyRemove offers only the removable keys, by fingerprint, and removes the pick: 🔑 1/2", function()
  local offered, prompt
  local real_select = vim.ui.select
  vim.ui.select = function(items, opts, on_choice)
    offered, prompt = {}, opts.prompt
    for _, item in ipairs(items) do
      offered[#offered + 1] = opts.format_item(item)
    end
    for _, item in ipairs(items) do
      if item.fingerprint == FP3 then
        return on_choice(item, _)
      end
    end
    on_choice(nil, nil)
  end
  local from = #H.notes + 1
  vim.cmd("LlmKeyRemove")
  H.wait(5000, function() return offered ~= nil end, "vim.ui.select")
  vim.ui.select = real_select
  H.contains(prompt, "Remove which anthropic credential", "prompt")
  H.eq(#offered, 1, "items offered (the environment keys are not)")
  local all = table.concat(offered, "\n")
  H.contains(all, FP3, "items")
  local env_note = H.wait_note("come from your environment", from)
  H.contains(env_note.msg, "2 keys come from your environment (ANTHROPIC_API_KEYS)", "why they are not offered")
  H.not_contains(env_note.msg, "-326", "no protocol jargon")
  for _, key in ipairs({ H.key1, H.key2, KEY3 }) do
    H.not_contains(all, key, "items")
  end
  H.wait_status("🔑 1/2")
  H.contains(H.wait_note("removed " .. FP3, from).msg, "🔑 1/2", "message")
  H.not_contains(open_status(), FP3, "status view after removal")
end)

H.test("dismissing the :LlmKeyRemove picker removes nothing", function()
  vim.ui.select = function(_, _, on_choice) on_choice(nil, nil) end
  vim.cmd("LlmKeyRemove")
  vim.wait(500)
  H.eq(H.statusline(), "🔑 1/2", "statusline")
end)

H.test("with only environment keys, :LlmKeyRemove offers nothing and says why in plain words", function()
  local called = false
  vim.ui.select = function() called = true end
  local from = #H.notes + 1
  vim.cmd("LlmKeyRemove")
  local note = H.wait_note("no anthropic key to remove here", from)
  H.eq(called, false, "no picker")
  H.contains(note.msg, "ANTHROPIC_API_KEYS", "names the variable")
  H.contains(note.msg, "shell profile or .env file", "what to do")
  H.eq(note.level, vim.log.levels.INFO, "not an error: nothing failed")
  H.eq(H.statusline(), "🔑 1/2", "statusline")
end)

H.test(":LlmKeyReset keeps 🔑 1/2 and says so", function()
  local from = #H.notes + 1
  vim.cmd("LlmKeyReset")
  H.contains(H.wait_note("back to the first key", from).msg, "🔑 1/2", "message")
  H.eq(H.statusline(), "🔑 1/2", "statusline")
end)

H.test(":LlmPolicy shows, sets and refuses what it does not know", function()
  local from = #H.notes + 1
  vim.cmd("LlmPolicy")
  H.contains(H.wait_note("key policy", from).msg, "sticky", "the default")
  from = #H.notes + 1
  vim.cmd("LlmPolicy primary")
  H.contains(H.wait_note("key policy", from).msg, "primary", "set")
  from = #H.notes + 1
  vim.cmd("LlmPolicy random")
  H.contains(H.wait_note("policy", from).msg, "must be one of", "refused")
  vim.cmd("LlmPolicy sticky")
end)

H.test("sidecar times are shown in local time", function()
  local st = require("llm_sidecar.status")
  H.eq(st.local_time("2026-11-22T14:05:00Z"), os.date("%Y-%m-%d %H:%M", 1795356300), "a UTC time")
  H.eq(st.local_time("2026-11-22T15:05:00.5+01:00"), os.date("%Y-%m-%d %H:%M", 1795356300), "an offset")
  H.eq(st.local_time(os.date("!%Y-%m-%dT%H:%M:%SZ", 1795356300 + 0)), os.date("%Y-%m-%d %H:%M", 1795356300), "round trip")
  H.eq(st.local_time("soon"), "soon", "not a time")
end)

H.test(":LlmStatus fits wrapped lines: every key visible, cooldowns in local time", function()
  H.reset()
  H.script(H.key1, { { kind = "rate_limited", retry_after = 120, message = string.rep("slow down please ", 8) } })
  vim.cmd("LlmAsk rotate")
  H.wait_status("🔑 2/2 (rotated)")
  local ask = require("llm_sidecar.ask").last
  H.wait(15000, function() return ask.done end, "the answer")
  local columns = vim.o.columns
  vim.o.columns = 60 -- narrow: the rate-limit message wraps
  local before = vim.api.nvim_get_current_win()
  vim.cmd("LlmStatus")
  H.wait(5000, function()
    local win = vim.api.nvim_get_current_win()
    return win ~= before and vim.api.nvim_win_get_config(win).relative ~= ""
  end, "the :LlmStatus float")
  local win = vim.api.nvim_get_current_win()
  local text = H.buf_text(0)
  local shown = vim.api.nvim_win_text_height(win, {}).all
  local height = vim.api.nvim_win_get_height(win)
  vim.cmd("close")
  vim.o.columns = columns
  H.contains(text, "slow down please", "the long message")
  H.truthy(shown <= height, ("all %d screen lines fit in the float's %d"):format(shown, height))
  H.truthy(shown > #vim.split(text, "\n"), "some lines did wrap (the test tests something)")
  local until_ = text:match("cooling down until ([^ ]+)")
  H.truthy(until_ and until_:match("^%d%d:%d%d:%d%d$"), "a local clock time, not UTC ISO: " .. tostring(until_))
end)

H.test("messages are one line each (no Press ENTER)", function()
  for _, n in ipairs(H.notes) do
    H.not_contains(n.msg, "\n", "notification")
  end
end)

H.done()
