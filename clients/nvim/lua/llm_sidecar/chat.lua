--- :LlmChat: a conversation. A transcript buffer (answers stream into it) above a
--- small input buffer; follow-ups send the whole history.

local M = {}

local api = vim.api

---@class llm_sidecar.Chat
---@field transcript integer  buffer
---@field input integer       buffer
---@field messages table[]    {role, content} sent so far
---@field ctx? llm_sidecar.Context  lines attached to the next message
---@field ask? llm_sidecar.Ask      the answer streaming now
---@field wins integer[]      [transcript, input] windows while open

---@type llm_sidecar.Chat?
M.current = nil
local count = 0

local function cfg()
  return require("llm_sidecar").config
end

local function scratch(name, ft)
  local buf = api.nvim_create_buf(false, true)
  pcall(api.nvim_buf_set_name, buf, name)
  vim.bo[buf].buftype = "nofile"
  -- Closing the chat keeps the conversation: :LlmChat opens it again.
  vim.bo[buf].bufhidden = "hide"
  vim.bo[buf].swapfile = false
  vim.bo[buf].filetype = ft
  return buf
end

--- What the input window's bar says: the attached lines and the keys.
local function winbar(chat)
  local k = cfg().keymaps
  local parts = {}
  if chat.ctx then
    parts[#parts + 1] = require("llm_sidecar.context").header(chat.ctx)
  end
  parts[#parts + 1] = ("%s send · %s stop · %s close"):format(k.send or "<C-s>", k.stop or ":LlmCancel", k.close or ":close")
  return " " .. table.concat(parts, "  ·  "):gsub("%%", "%%%%")
end

local function is_open(chat)
  return chat.wins and #chat.wins == 2 and api.nvim_win_is_valid(chat.wins[1]) and api.nvim_win_is_valid(chat.wins[2])
end

local function refresh_bar(chat)
  if is_open(chat) then
    vim.wo[chat.wins[2]].winbar = winbar(chat)
  end
end

--- Lines at the end of the transcript (it is read-only between answers).
local function put(chat, lines)
  local buf = chat.transcript
  vim.bo[buf].modifiable = true
  local n = api.nvim_buf_line_count(buf)
  local empty = n == 1 and api.nvim_buf_get_lines(buf, 0, 1, false)[1] == ""
  api.nvim_buf_set_lines(buf, empty and 0 or n, -1, false, lines)
  vim.bo[buf].modifiable = false
end

local function follow(chat)
  local win = chat.wins and chat.wins[1]
  if win and api.nvim_win_is_valid(win) then
    pcall(api.nvim_win_set_cursor, win, { api.nvim_buf_line_count(chat.transcript), 0 })
  end
end

--- Close the chat's windows (the conversation stays).
---@param chat? llm_sidecar.Chat  default: the current one
function M.close(chat)
  chat = chat or M.current
  if not chat or not chat.wins then
    return
  end
  for _, win in ipairs(chat.wins) do
    -- A window of the chat that shows another buffer by now is the user's: leave it.
    local buf = api.nvim_win_is_valid(win) and api.nvim_win_get_buf(win)
    if buf == chat.transcript or buf == chat.input then
      if #api.nvim_list_wins() == 1 then
        vim.cmd("enew") -- the last window: keep it, show an empty buffer
      else
        api.nvim_win_close(win, true)
      end
    end
  end
  chat.wins = nil
end

--- Stop the answer being streamed.
function M.stop()
  local chat = M.current
  if chat and chat.ask and not chat.ask.done then
    require("llm_sidecar.ask").cancel(chat.transcript)
  else
    require("llm_sidecar.rpc").notify("nothing to cancel.", vim.log.levels.INFO)
  end
end

--- Send the input (or `text`) as the next message of the conversation.
---@param text? string
function M.send(text)
  local chat = M.current
  if not chat then
    return
  end
  local rpc = require("llm_sidecar.rpc")
  if chat.ask and not chat.ask.done then
    return rpc.notify("an answer is still coming: wait, or stop it with " .. (cfg().keymaps.stop or ":LlmCancel") .. ".", vim.log.levels.WARN)
  end
  if not text then
    text = table.concat(api.nvim_buf_get_lines(chat.input, 0, -1, false), "\n")
    api.nvim_buf_set_lines(chat.input, 0, -1, false, {})
  end
  text = vim.trim(text)
  if text == "" then
    return
  end
  local ctx = chat.ctx
  chat.ctx = nil
  refresh_bar(chat)
  local content = ctx and (text .. "\n\n" .. ctx.text) or text
  chat.messages[#chat.messages + 1] = { role = "user", content = content }

  local lines = { "## You" }
  if ctx then
    lines[#lines + 1] = require("llm_sidecar.context").header(ctx)
  end
  vim.list_extend(lines, vim.split(text, "\n", { plain = true }))
  vim.list_extend(lines, { "", "## " .. cfg().model, "", "" })
  if #chat.messages > 1 then
    table.insert(lines, 1, "")
  end
  put(chat, lines)
  follow(chat)

  local history = vim.deepcopy(chat.messages)
  chat.ask = require("llm_sidecar.ask").stream(chat.transcript, history, {
    on_done = function(ask, err)
      local answer = ask.text
      if err and answer == "" then
        -- Nothing came back: forget the question, so the next one does not follow
        -- another user message.
        table.remove(chat.messages)
      else
        chat.messages[#chat.messages + 1] = { role = "assistant", content = answer }
      end
      if api.nvim_buf_is_valid(chat.transcript) then
        vim.bo[chat.transcript].modifiable = false
      end
      follow(chat)
    end,
  })
end

local function map_keys(chat)
  local k = cfg().keymaps
  for _, buf in ipairs({ chat.transcript, chat.input }) do
    local function map(modes, lhs, fn, desc)
      if lhs then
        vim.keymap.set(modes, lhs, fn, { buffer = buf, nowait = true, desc = "llm-sidecar: " .. desc })
      end
    end
    map({ "n", "i" }, k.stop, M.stop, "stop the answer")
    map("n", k.close, function() M.close(chat) end, "close the chat")
  end
  vim.keymap.set("n", k.send or "<C-s>", function() M.send() end, { buffer = chat.input, desc = "llm-sidecar: send" })
  vim.keymap.set("i", "<C-s>", function() M.send() end, { buffer = chat.input, desc = "llm-sidecar: send" })
end

local function new_chat()
  count = count + 1
  local pid = vim.fn.getpid()
  local chat = {
    transcript = scratch(("llm://chat/%d/%d"):format(pid, count), "markdown"),
    input = scratch(("llm://chat/%d/%d/input"):format(pid, count), "markdown"),
    messages = {},
  }
  vim.bo[chat.transcript].modifiable = false
  map_keys(chat)
  return chat
end

local function open_windows(chat)
  local c = cfg()
  if c.chat_layout == "float" then
    local width = math.max(40, math.floor(vim.o.columns * 0.8))
    local height = math.max(6, math.floor(vim.o.lines * 0.8) - 7)
    local col = math.floor((vim.o.columns - width) / 2)
    local row = math.max(0, math.floor((vim.o.lines - height - 7) / 2))
    local base = { relative = "editor", width = width, col = col, border = "rounded", style = "minimal" }
    local t = api.nvim_open_win(chat.transcript, false, vim.tbl_extend("force", base, {
      row = row, height = height, title = " llm-sidecar chat ", title_pos = "center" }))
    local i = api.nvim_open_win(chat.input, true, vim.tbl_extend("force", base, { row = row + height + 2, height = 3 }))
    chat.wins = { t, i }
  else
    vim.cmd(c.chat_open)
    local t = api.nvim_get_current_win()
    api.nvim_win_set_buf(t, chat.transcript)
    vim.cmd("belowright 4split")
    local i = api.nvim_get_current_win()
    api.nvim_win_set_buf(i, chat.input)
    vim.wo[i].winfixheight = true
    chat.wins = { t, i }
  end
  vim.wo[chat.wins[1]].wrap = true
  vim.wo[chat.wins[1]].linebreak = true
  -- Closing either window closes the chat, so no half of it is left behind.
  for _, win in ipairs(chat.wins) do
    api.nvim_create_autocmd("WinClosed", {
      pattern = tostring(win),
      once = true,
      callback = function() vim.schedule(function() M.close(chat) end) end,
    })
  end
  refresh_bar(chat)
  follow(chat)
end

--- :[range]LlmChat[!] [message]: open the chat (a new one with !), attach the range,
--- send the message if there is one.
---@param opts? {range?: table, prompt?: string, new?: boolean}
function M.open(opts)
  opts = opts or {}
  local source = { buf = api.nvim_get_current_buf(), win = api.nvim_get_current_win() }
  local ctx = require("llm_sidecar.context").capture(opts.range)
  if opts.new or not M.current or not api.nvim_buf_is_valid(M.current.transcript) then
    local old = M.current
    if old then
      -- A new chat replaces the old one: its buffers go (a running answer is cancelled).
      M.close(old)
      for _, buf in ipairs({ old.transcript, old.input }) do
        if api.nvim_buf_is_valid(buf) then
          api.nvim_buf_delete(buf, { force = true })
        end
      end
    end
    M.current = new_chat()
  end
  local chat = M.current
  if ctx then
    chat.ctx = ctx
    source.ctx = ctx
  end
  local in_chat = source.buf == chat.transcript or source.buf == chat.input
  if not in_chat then
    require("llm_sidecar.apply").attach(chat.transcript, source)
  end
  if not is_open(chat) then
    open_windows(chat)
  else
    api.nvim_set_current_win(chat.wins[2])
    refresh_bar(chat)
  end
  if opts.prompt and vim.trim(opts.prompt) ~= "" then
    M.send(opts.prompt)
  else
    vim.cmd("startinsert")
  end
end

return M
