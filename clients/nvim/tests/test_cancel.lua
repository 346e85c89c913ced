-- :LlmCancel, <C-c> and q stop a stalled stream; the upstream connection is closed.
local H = dofile(vim.fs.joinpath(vim.fs.dirname(debug.getinfo(1, "S").source:sub(2)), "helpers.lua"))

H.setup()
H.wait_status("🔑 1/2")

local STALLED = {
  kind = "reply",
  content = { { type = "text", text = "Partial words arrive, then the provider stalls for a long time before the rest." } },
  chunk = 8,
  stall = 60,
  stall_after = 6,
}

local function ask_state(buf)
  return require("llm_sidecar.ask").by_buf[buf]
end

--- Ask and wait until some text streamed in and the provider stalls.
local function start_stalled(prompt)
  H.script(H.key1, { STALLED })
  vim.cmd("LlmAsk " .. prompt)
  local buf = vim.api.nvim_get_current_buf()
  H.wait(10000, function() return H.buf_text(buf):find("Partial", 1, true) ~= nil end, "the first words")
  vim.wait(300)
  H.eq(ask_state(buf).done, false, "still streaming")
  return buf
end

local function closed_connections()
  local n = 0
  for _, ev in ipairs(H.fake("GET", "/_fake/log").events or {}) do
    local name = type(ev) == "table" and (ev.name or ev[1]) or nil
    if name == "connection_closed" then
      n = n + 1
    end
  end
  return n
end

H.test(":LlmCancel with nothing running says so", function()
  local from = #H.notes + 1
  vim.cmd("LlmCancel")
  H.wait_note("nothing to cancel", from)
end)

H.test(":LlmCancel stops a stalled stream: the buffer says cancelled, the upstream is closed", function()
  local closed_before = closed_connections()
  local buf = start_stalled("Tell me a long story")
  local before = H.buf_text(buf)
  H.not_contains(before, "cancelled", "buffer before cancel")
  vim.cmd("wincmd p") -- :LlmCancel from another window cancels the latest answer
  vim.cmd("LlmCancel")
  local text = H.buf_text(buf)
  H.contains(text, "Partial", "the partial answer stays")
  H.truthy(text:match("\n%-%-%-\n%*cancelled%*$"), "buffer ends with the cancelled footer:\n" .. text)
  H.eq(ask_state(buf).done, true, "done")
  H.eq(ask_state(buf).cancelled, true, "cancelled")
  H.wait(5000, function() return closed_connections() > closed_before end, "the fake to see the connection closed")
  vim.wait(500)
  H.eq(H.buf_text(buf), text, "nothing arrives after the cancel")
  H.eq(H.statusline(), "🔑 1/2", "statusline")
end)

H.test("<C-c> in the answer buffer cancels it", function()
  local buf = start_stalled("Another long story")
  H.eq(vim.api.nvim_get_current_buf(), buf, "the answer window is current")
  vim.api.nvim_feedkeys(vim.keycode("<C-c>"), "x", false)
  H.wait(2000, function() return ask_state(buf).done end, "<C-c> to cancel")
  H.truthy(H.buf_text(buf):match("%*cancelled%*$"), "cancelled footer")
end)

H.test("q in the answer buffer cancels it, closes its window and wipes it", function()
  local wins = #vim.api.nvim_tabpage_list_wins(0)
  local closed_before = closed_connections()
  local buf = start_stalled("A third long story")
  local ask = ask_state(buf)
  vim.api.nvim_feedkeys("q", "x", false)
  H.wait(2000, function() return ask.done end, "q to cancel")
  H.eq(ask.cancelled, true, "cancelled")
  H.wait(5000, function() return closed_connections() > closed_before end, "the fake to see the connection closed")
  H.eq(vim.api.nvim_buf_is_valid(buf), false, "the closed answer is wiped, not left to pile up")
  H.truthy(#vim.api.nvim_tabpage_list_wins(0) < wins or wins == 1, "the answer window closed")
end)

H.test("wiping the answer buffer cancels the stream", function()
  local closed_before = closed_connections()
  local buf = start_stalled("A fourth long story")
  vim.cmd("bwipeout! " .. buf)
  H.wait(5000, function() return closed_connections() > closed_before end, "the fake to see the connection closed")
end)

H.test("the sidecar still answers after the cancels", function()
  H.reset()
  vim.cmd("LlmAsk Still there?")
  local buf = vim.api.nvim_get_current_buf()
  H.wait(15000, function() return ask_state(buf).done end, "the answer")
  H.contains(H.buf_text(buf), "key " .. H.fingerprint(H.key1), "footer")
  H.not_contains(H.buf_text(buf), "cancelled", "buffer")
end)

H.done()
