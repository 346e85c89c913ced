-- :LlmChat as a user drives it: input area, follow-ups with history, stop, close,
-- a range attached, the float layout, and applying a code block to the source.
local H = dofile(vim.fs.joinpath(vim.fs.dirname(debug.getinfo(1, "S").source:sub(2)), "helpers.lua"))

H.setup()
H.wait_status("🔑 1/2")

local api = vim.api
local chat = function() return require("llm_sidecar.chat").current end

local function requests()
  return H.fake("GET", "/_fake/log").requests
end

--- Type `text` into the chat's input (Insert mode, as a user would) and send it with <CR>.
local function say(text)
  local c = chat()
  api.nvim_set_current_win(c.wins[2])
  vim.api.nvim_feedkeys(vim.keycode("<Esc>i" .. text .. "<Esc>") .. vim.keycode("<CR>"), "xt", false)
end

local function wait_answer(what)
  H.wait(15000, function() return chat().ask and chat().ask.done end, what or "the answer")
end

H.test(":LlmChat opens a transcript and an input area below it, the input focused", function()
  vim.cmd("only")
  local src = api.nvim_get_current_win()
  vim.cmd("LlmChat")
  vim.cmd("stopinsert")
  local c = chat()
  H.eq(#c.wins, 2, "two windows")
  H.eq(api.nvim_get_current_win(), c.wins[2], "the input window is current")
  H.eq(api.nvim_win_get_buf(c.wins[1]), c.transcript, "transcript window")
  H.truthy(src ~= c.wins[1], "a new window, the source stays")
  H.contains(vim.wo[c.wins[2]].winbar, "<CR> send", "the keys are shown")
  H.eq(vim.bo[c.transcript].filetype, "markdown", "filetype")
end)

H.test("a message and a follow-up: the answer streams in, the history goes with the follow-up", function()
  say("What is Lua?")
  wait_answer()
  local t = H.buf_text(chat().transcript)
  H.contains(t, "## You\nWhat is Lua?\n\n## claude-sonnet-4-5\n\nHello from the fake", "transcript")
  H.contains(t, "key " .. H.fingerprint(H.key1), "footer under the answer")
  H.eq(H.buf_text(chat().input), "", "the input is cleared")
  local first_answer = chat().messages[2].content
  H.contains(first_answer, "Hello from the fake", "kept answer")
  H.not_contains(first_answer, "---", "the footer is not part of the history")
  say("And Python?")
  wait_answer("the follow-up")
  local msgs = requests()[#requests()].body.messages
  H.eq(#msgs, 3, "messages sent with the follow-up")
  H.eq(msgs[1].content, "What is Lua?", "first question")
  H.eq(msgs[2].role, "assistant", "then the answer")
  H.eq(msgs[2].content, first_answer, "the answer as it was")
  H.eq(msgs[3].content, "And Python?", "then the follow-up")
  H.contains(H.buf_text(chat().transcript), "\n## You\nAnd Python?\n", "transcript")
end)

H.test("<C-c> stops the answer; the conversation goes on", function()
  H.script(H.key1, { { kind = "reply", content = { { type = "text", text = "Partial words, then a long stall before the rest." } },
    chunk = 8, stall = 60, stall_after = 6 } })
  say("Tell me a long story")
  H.wait(10000, function() return H.buf_text(chat().transcript):find("Partial", 1, true) ~= nil end, "the first words")
  H.eq(chat().ask.done, false, "still streaming")
  api.nvim_feedkeys(vim.keycode("<C-c>"), "xt", false)
  H.wait(3000, function() return chat().ask.done end, "<C-c> to stop")
  H.truthy(H.buf_text(chat().transcript):match("%*cancelled%*$"), "cancelled footer")
  H.fake("POST", "/_fake/reset")
  say("Shorter, please")
  wait_answer()
  local msgs = requests()[#requests()].body.messages
  H.eq(msgs[#msgs].content, "Shorter, please", "the new question")
  H.eq(msgs[#msgs - 1].role, "assistant", "the partial answer stays in the history")
end)

H.test("q closes the chat; :LlmChat opens the same conversation again", function()
  local c = chat()
  api.nvim_set_current_win(c.wins[1])
  api.nvim_feedkeys("q", "xt", false)
  H.wait(2000, function() return #vim.fn.win_findbuf(c.transcript) == 0 and #vim.fn.win_findbuf(c.input) == 0 end,
    "both windows closed")
  vim.cmd("LlmChat")
  vim.cmd("stopinsert")
  H.eq(chat(), c, "the same chat")
  H.contains(H.buf_text(c.transcript), "What is Lua?", "the history is still there")
end)

local CODE_ANSWER = "Here is a shorter version:\n\n```lua\nlocal function add(a, b)\n  return a + b\nend\n```\n\nThat is all."

H.test(":[range]LlmChat attaches the lines (a header line); the apply key replaces them, one undo", function()
  local old = chat()
  vim.cmd("LlmChat!") -- a new conversation
  vim.cmd("stopinsert")
  H.truthy(chat() ~= old, "a new chat")
  H.eq(vim.api.nvim_buf_is_valid(old.transcript), false, "the old transcript is wiped")
  vim.cmd("wincmd t")
  vim.cmd("enew")
  api.nvim_buf_set_name(0, "src/add.lua")
  vim.bo.buftype = "nofile"
  vim.bo.filetype = "lua"
  api.nvim_buf_set_lines(0, 0, -1, false, { "-- keep", "local function add(a, b)", "  local s = a + b", "  return s", "end", "-- keep too" })
  vim.bo.undolevels = vim.bo.undolevels -- a fresh undo sequence starts here
  local src = api.nvim_get_current_buf()
  local before = api.nvim_buf_get_lines(src, 0, -1, false)
  vim.cmd("2,5LlmChat")
  vim.cmd("stopinsert")
  H.contains(vim.wo[chat().wins[2]].winbar, "📎 src/add.lua:2-5 (4 lines)", "the attachment is shown before sending")
  H.script(H.key1, { { kind = "reply", content = { { type = "text", text = CODE_ANSWER } }, chunk = 20 } })
  say("Shorten this")
  wait_answer()
  local t = H.buf_text(chat().transcript)
  H.contains(t, "## You\n📎 src/add.lua:2-5 (4 lines)\nShorten this\n", "the header line")
  local content = requests()[#requests()].body.messages[1].content
  H.contains(content, "Shorten this\n\nFrom src/add.lua, lines 2-5:\n```lua\nlocal function add(a, b)\n  local s = a + b", "the lines were sent")
  H.eq(#requests()[#requests()].body.messages, 1, "a new chat has no history")
  -- the cursor on the code, then the apply key
  api.nvim_set_current_win(chat().wins[1])
  local lines = api.nvim_buf_get_lines(chat().transcript, 0, -1, false)
  local row
  for i, l in ipairs(lines) do
    if l == "  return a + b" then
      row = i
    end
  end
  api.nvim_win_set_cursor(0, { row, 0 })
  local from = #H.notes + 1
  api.nvim_feedkeys("ga", "xt", false)
  H.wait_note("replaced lines 2-5 of src/add.lua", from)
  H.eq(api.nvim_buf_get_lines(src, 0, -1, false),
    { "-- keep", "local function add(a, b)", "  return a + b", "end", "-- keep too" }, "the source after apply")
  -- The transcript, for the README (NVIM_SCREEN_CAPTURE=file).
  if os.getenv("NVIM_SCREEN_CAPTURE") then
    vim.fn.writefile(api.nvim_buf_get_lines(chat().transcript, 0, -1, false), os.getenv("NVIM_SCREEN_CAPTURE"))
  end
  api.nvim_buf_call(src, function() vim.cmd("undo") end)
  H.eq(api.nvim_buf_get_lines(src, 0, -1, false), before, "one undo restores the source")
end)

H.test("the attached lines are followed through edits above them", function()
  local src = require("llm_sidecar.apply").targets[chat().transcript].buf
  api.nvim_buf_set_lines(src, 0, 0, false, { "-- a line added above", "-- and another" })
  api.nvim_set_current_win(chat().wins[1])
  vim.fn.search("^  return a + b$")
  local from = #H.notes + 1
  api.nvim_feedkeys("ga", "xt", false)
  H.wait_note("replaced lines 4-7 of src/add.lua", from)
  H.eq(api.nvim_buf_get_lines(src, 0, -1, false), { "-- a line added above", "-- and another", "-- keep",
    "local function add(a, b)", "  return a + b", "end", "-- keep too" }, "the source")
end)

H.test("the apply key outside a code block says what to do and changes nothing", function()
  local src = require("llm_sidecar.apply").targets[chat().transcript].buf
  local before = api.nvim_buf_get_lines(src, 0, -1, false)
  api.nvim_set_current_win(chat().wins[1])
  api.nvim_win_set_cursor(0, { 1, 0 })
  local from = #H.notes + 1
  api.nvim_feedkeys("ga", "xt", false)
  H.wait_note("inside a ``` code block", from)
  H.eq(api.nvim_buf_get_lines(src, 0, -1, false), before, "source unchanged")
end)

H.test("apply in an :LlmAsk answer without a range inserts below the cursor of the source", function()
  vim.cmd("only")
  vim.cmd("enew")
  vim.bo.buftype = "nofile"
  api.nvim_buf_set_lines(0, 0, -1, false, { "one", "two" })
  api.nvim_win_set_cursor(0, { 1, 0 })
  local src = api.nvim_get_current_buf()
  H.script(H.key1, { { kind = "reply", content = { { type = "text", text = "```\ninserted\n```" } } } })
  vim.cmd("LlmAsk Give me a line")
  local buf = api.nvim_get_current_buf()
  H.wait(15000, function() return require("llm_sidecar.ask").by_buf[buf].done end, "the answer")
  vim.fn.search("^inserted$")
  api.nvim_feedkeys("ga", "xt", false)
  H.eq(api.nvim_buf_get_lines(src, 0, -1, false), { "one", "inserted", "two" }, "the source")
end)

H.test("chat_layout = 'float' opens the transcript and the input as floats", function()
  vim.cmd("only")
  H.setup({ chat_layout = "float" })
  vim.cmd("LlmChat!")
  vim.cmd("stopinsert")
  local c = chat()
  for _, win in ipairs(c.wins) do
    H.truthy(api.nvim_win_get_config(win).relative ~= "", "a float")
  end
  say("Hi")
  wait_answer()
  H.contains(H.buf_text(c.transcript), "## You\nHi\n", "transcript")
  api.nvim_feedkeys("q", "xt", false)
  H.wait(2000, function() return #vim.fn.win_findbuf(c.transcript) == 0 end, "closed")
end)

H.done()
