-- :LlmAsk streams into a scratch Markdown buffer; restart deltas; errors; the footer.
local H = dofile(vim.fs.joinpath(vim.fs.dirname(debug.getinfo(1, "S").source:sub(2)), "helpers.lua"))

H.setup()
H.wait_status("🔑 1/2")

local function ask_state(buf)
  return require("llm_sidecar.ask").by_buf[buf]
end

local function wait_done(buf, ms)
  H.wait(ms or 15000, function()
    local a = ask_state(buf)
    return a ~= nil and a.done
  end, "the answer to finish")
end

local ANSWER = "Hello from the fake provider. This answer arrives in many small pieces, "
  .. "so the buffer fills while you watch.\n\nSecond paragraph: done."

H.test(":LlmAsk streams the answer into a scratch Markdown buffer, then a usage/cost footer", function()
  H.script(H.key1, { { kind = "reply", content = { { type = "text", text = ANSWER } }, chunk = 8, interval = 0.1,
    usage = { input = 12, output = 34 } } })
  local origin = vim.api.nvim_get_current_win()
  vim.cmd("LlmAsk Say hello")
  local buf = vim.api.nvim_get_current_buf()
  H.truthy(vim.api.nvim_get_current_win() ~= origin, "the answer opens in a new window")
  H.eq(vim.bo[buf].filetype, "markdown", "filetype")
  H.eq(vim.bo[buf].buftype, "nofile", "buftype")
  H.eq(vim.bo[buf].swapfile, false, "swapfile")
  H.contains(H.buf_text(buf), "> Say hello", "the question is shown")
  -- The answer grows while it streams: see a part of it before the end.
  H.wait(10000, function() return H.buf_text(buf):find("Hello from", 1, true) ~= nil end, "the first words")
  local partial = H.buf_text(buf)
  H.truthy(not partial:find("Second paragraph: done.", 1, true), "a partial answer was seen before the end")
  H.eq(ask_state(buf).done, false, "still streaming")
  wait_done(buf)
  local text = H.buf_text(buf)
  H.contains(text, "> Say hello\n\n" .. ANSWER .. "\n\n---\n*claude-sonnet-4-5 · 12 in, 34 out · $", "answer and footer")
  H.contains(text, "key " .. H.fingerprint(H.key1) .. "*", "the credential that answered")
  H.not_contains(text, H.key1, "buffer")
  H.eq(vim.bo[buf].modifiable, true, "editable once finished")
  H.eq(H.statusline(), "🔑 1/2", "statusline")
end)

H.test("the request carries the configured model and the prompt; the fake saw it", function()
  local log = H.fake("GET", "/_fake/log")
  local last = log.requests[#log.requests]
  H.eq(last.model, "claude-sonnet-4-5", "model")
  H.eq(last.key, "sk-ant-…1111", "key used (fake's fingerprint)")
  local body = vim.json.encode(last.body.messages)
  H.contains(body, "Say hello", "messages")
end)

local function last_content()
  local log = H.fake("GET", "/_fake/log")
  local content = log.requests[#log.requests].body.messages[1].content
  return type(content) == "table" and vim.json.encode(content) or content
end

H.test(":'<,'>LlmAsk sends the selected lines as a fenced block, shown as one header line", function()
  vim.cmd("only") -- the source in one window, the answers in another
  vim.cmd("enew")
  vim.api.nvim_buf_set_name(0, "src/x.lua")
  vim.bo.buftype = "nofile"
  vim.bo.filetype = "lua"
  vim.api.nvim_buf_set_lines(0, 0, -1, false, { "local x = 1", "return x + 1", "-- not this" })
  vim.cmd("1,2LlmAsk Explain")
  local buf = vim.api.nvim_get_current_buf()
  wait_done(buf)
  H.contains(H.buf_text(buf), "> Explain\n> 📎 src/x.lua:1-2 (2 lines)\n\n", "question and context header")
  H.not_contains(H.buf_text(buf), "local x = 1", "the attached code is not repeated in the answer buffer")
  local content = last_content()
  H.contains(content, "From src/x.lua, lines 1-2:\n```lua\nlocal x = 1\nreturn x + 1\n```", "prompt holds the selection")
  H.not_contains(content, "not this", "prompt")
end)

H.test(":%LlmAsk attaches the whole buffer", function()
  vim.cmd("wincmd p")
  H.eq(vim.api.nvim_buf_get_name(0):match("src/x.lua$"), "src/x.lua", "back in the source")
  vim.cmd("%LlmAsk Review")
  local buf = vim.api.nvim_get_current_buf()
  wait_done(buf)
  H.contains(H.buf_text(buf), "> Review\n> 📎 src/x.lua (whole buffer, 3 lines)\n", "header")
  H.contains(last_content(), "local x = 1\nreturn x + 1\n-- not this\n```", "the whole buffer was sent")
end)

H.test("an answer replaced in its window by the next one is wiped", function()
  local first = require("llm_sidecar.ask").last.buf
  local win = vim.api.nvim_get_current_win()
  vim.cmd("wincmd p")
  vim.cmd("LlmAsk again")
  local second = vim.api.nvim_get_current_buf()
  H.eq(vim.api.nvim_get_current_win(), win, "the answer window is reused")
  H.truthy(second ~= first, "a new buffer")
  H.eq(vim.api.nvim_buf_is_valid(first), false, "the replaced answer buffer is wiped")
  wait_done(second)
end)

H.test("a restart delta clears the partial text of the failed attempt", function()
  H.reset()
  local first = "FIRST-ATTEMPT words that must vanish when the request is replayed elsewhere."
  local second = "SECOND-ATTEMPT answer from the other key, arriving slowly enough to be watched."
  H.script(H.key1, { { kind = "reply", content = { { type = "text", text = first } }, chunk = 10, error_after = 6 } })
  H.script(H.key2, { { kind = "reply", content = { { type = "text", text = second } }, chunk = 6, interval = 0.1 } })
  local from = #H.notes + 1
  vim.cmd("LlmAsk Tell me something")
  local buf = vim.api.nvim_get_current_buf()
  H.wait(10000, function() return H.buf_text(buf):find("SECOND-ATTEMPT", 1, true) ~= nil end, "the replayed answer")
  H.eq(ask_state(buf).done, false, "still streaming the replay")
  H.not_contains(H.buf_text(buf), "FIRST-ATTEMPT", "buffer during the replay")
  wait_done(buf)
  local text = H.buf_text(buf)
  H.contains(text, second .. "\n\n---\n", "the answer")
  H.not_contains(text, "FIRST-ATTEMPT", "buffer")
  H.contains(text, "key " .. H.fingerprint(H.key2), "footer names key 2")
  H.contains(text, "2 attempts", "footer")
  H.wait_note("retrying on another credential", from)
end)

H.test("every key rate limited: the buffer and a WARN notification say what to do", function()
  H.reset()
  H.script(H.key1, { { kind = "rate_limited", retry_after = 120 } })
  H.script(H.key2, { { kind = "rate_limited", retry_after = 60 } })
  local from = #H.notes + 1
  vim.cmd("LlmAsk Anyone there?")
  local buf = vim.api.nvim_get_current_buf()
  wait_done(buf)
  H.contains(H.buf_text(buf), "\n---\n*error: ", "buffer footer")
  local note = H.wait_note("Asking anthropic failed", from)
  H.eq(note.level, vim.log.levels.WARN, "level")
  H.contains(note.msg, ":LlmKeyAdd", "advice")
  -- Which key is "current" once all rest does not matter; that they all rest does.
  H.wait(20000, function() return H.statusline():find("(all rate limited)", 1, true) ~= nil end, "the status")
end)

H.test("an unknown model is an error naming the setup() option", function()
  H.reset()
  H.script(H.key1, { { kind = "error", type = "not_found_error", status = 404, message = "model: nope" } })
  local from = #H.notes + 1
  vim.cmd("LlmAsk Hi")
  local buf = vim.api.nvim_get_current_buf()
  wait_done(buf)
  local note = H.wait_note("Asking anthropic failed", from)
  H.eq(note.level, vim.log.levels.ERROR, "level")
  H.contains(note.msg, "404", "message names the status")
  H.contains(H.buf_text(buf), "*error: ", "buffer")
  H.eq(H.statusline(), "🔑 1/2", "no rotation for a request error")
end)

H.test("a fallback delta: a line above the answer, a WARN, the footer names who answered", function()
  H.reset()
  local router = "sk-or-v1-nvim-fallback-test-key-0001"
  H.script(H.key1, {}, { kind = "rate_limited", retry_after = 600 })
  H.script(H.key2, {}, { kind = "rate_limited", retry_after = 600 })
  H.script(router, {}, { kind = "reply", content = { { type = "text", text = "FALLBACK answer." } } })
  local function cli(args, stdin)
    local res = vim.system(vim.list_extend({ H.python, "-m", "sidecar" }, args), { stdin = stdin or "" }):wait()
    H.eq(res.code, 0, table.concat(args, " ") .. ": " .. (res.stderr or ""))
  end
  cli({ "key", "add", "--provider", "openrouter" }, router .. "\n")
  cli({ "fallback", "add", "-p", "anthropic", "--model", "claude-*", "--to", "openrouter:or/sonnet" })
  local from = #H.notes + 1
  vim.cmd("LlmAsk Who answers?")
  local buf = vim.api.nvim_get_current_buf()
  wait_done(buf)
  cli({ "fallback", "remove", "-p", "anthropic", "--model", "claude-*" })
  local text = H.buf_text(buf)
  H.contains(text, "> ↪ answered by the fallback openrouter or/sonnet\n\nFALLBACK answer.\n\n---\n", "buffer")
  H.contains(text, "*openrouter or/sonnet (fallback for anthropic claude-sonnet-4-5) · ", "footer")
  H.eq(require("llm_sidecar.ask").by_buf[buf].text, "FALLBACK answer.", "the answer a follow-up sends")
  local note = H.wait_note("falling back to openrouter or/sonnet: ", from)
  H.eq(note.level, vim.log.levels.WARN, "level")
  H.contains(note.msg, "rate limited", "why")
end)

H.test("the answer is built from the deltas; a result's content, when present, has the last word", function()
  local ask = require("llm_sidecar.ask")
  -- The plugin asks with omitContent: the result carries no second copy of the answer.
  H.eq(ask.answer_text(nil), nil, "no content (omitContent)")
  local blocks = { { type = "text", text = "Hel" }, { type = "tool_use", id = "t", name = "x" },
    { type = "text", text = "lo" } }
  H.eq(ask.answer_text(blocks), "Hello", "text blocks joined")
end)

H.done()
