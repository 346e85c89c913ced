--- :LlmAsk: stream an answer into a scratch Markdown buffer; :LlmCancel stops it.

local M = {}

local rpc = require("llm_sidecar.rpc")
local api = vim.api

---@class llm_sidecar.Ask
---@field stream_id string
---@field buf integer
---@field answer_row integer  0-based row where the answer starts
---@field text string         the answer streamed so far
---@field request_id? integer
---@field done boolean
---@field cancelled boolean
---@field on_done? fun(ask: llm_sidecar.Ask, err: table?, result: table?)

---@type table<string, llm_sidecar.Ask> streamId -> ask
M.asks = {}
---@type table<integer, llm_sidecar.Ask> buffer -> its ask
M.by_buf = {}
M.last = nil ---@type llm_sidecar.Ask?
local seq = 0
local ask_win = nil ---@type integer?

local function with_modifiable(buf, fn)
  vim.bo[buf].modifiable = true
  local ok, err = pcall(fn)
  vim.bo[buf].modifiable = false
  if not ok then
    error(err)
  end
end

--- Append text at the very end of the buffer, following it in windows that were at the end.
local function append(ask, text)
  local buf = ask.buf
  if text == "" or not api.nvim_buf_is_valid(buf) then
    return
  end
  local last = api.nvim_buf_line_count(buf) - 1
  local following = {}
  for _, win in ipairs(vim.fn.win_findbuf(buf)) do
    if api.nvim_win_get_cursor(win)[1] >= last then
      following[#following + 1] = win
    end
  end
  local line = api.nvim_buf_get_lines(buf, last, last + 1, true)[1]
  with_modifiable(buf, function()
    api.nvim_buf_set_text(buf, last, #line, last, #line, vim.split(text, "\n", { plain = true }))
  end)
  local count = api.nvim_buf_line_count(buf)
  for _, win in ipairs(following) do
    pcall(api.nvim_win_set_cursor, win, { count, 0 })
  end
end

--- Replace the answer (everything from answer_row on) with `text`.
local function set_answer(ask, text)
  ask.text = text
  if not api.nvim_buf_is_valid(ask.buf) then
    return
  end
  with_modifiable(ask.buf, function()
    api.nvim_buf_set_lines(ask.buf, ask.answer_row, -1, false, vim.split(text, "\n", { plain = true }))
  end)
end

local function footer(ask, line)
  local sep = ask.text:sub(-1) == "\n" and "\n---\n" or "\n\n---\n"
  append(ask, sep .. line)
end

local function money(cost)
  if type(cost) ~= "table" or type(cost.total) ~= "number" then
    return nil
  end
  local cur = cost.currency == "USD" and "$" or ((cost.currency or "") .. " ")
  local amount = ("%.6f"):format(cost.total):gsub("0+$", ""):gsub("%.$", ".00")
  return cur .. amount
end

--- The footer of a finished answer: model, tokens, cost, the credential that answered.
function M.usage_line(result)
  local parts = { result.model }
  local from = result.fallbackFrom
  if type(from) == "table" then
    parts[1] = ("%s %s (fallback for %s %s)"):format(
      tostring(result.provider),
      tostring(result.model),
      tostring(from.provider),
      tostring(from.model)
    )
  end
  local u = result.usage
  if type(u) == "table" then
    local tokens = ("%d in, %d out"):format(u.inputTokens or 0, u.outputTokens or 0)
    if (u.cacheReadTokens or 0) > 0 or (u.cacheWriteTokens or 0) > 0 then
      tokens = tokens .. (", cache %d read, %d written"):format(u.cacheReadTokens or 0, u.cacheWriteTokens or 0)
    end
    parts[#parts + 1] = tokens
  end
  parts[#parts + 1] = money(result.cost)
  if type(result.credential) == "table" and result.credential.fingerprint then
    parts[#parts + 1] = "key " .. result.credential.fingerprint
  end
  if type(result.attempts) == "number" and result.attempts > 1 then
    parts[#parts + 1] = result.attempts .. " attempts"
  end
  if result.stopReason and result.stopReason ~= "end_turn" then
    parts[#parts + 1] = "stopped: " .. result.stopReason
  end
  local kept = {}
  for _, p in pairs(parts) do
    if p and p ~= "" then
      kept[#kept + 1] = p
    end
  end
  return "*" .. table.concat(kept, " · ") .. "*"
end

local function open_window(buf, cmd)
  -- Reuse the answer window only while it shows an answer: a file opened in it since
  -- must not be replaced.
  if ask_win and api.nvim_win_is_valid(ask_win) and vim.b[api.nvim_win_get_buf(ask_win)].llm_sidecar_answer then
    api.nvim_win_set_buf(ask_win, buf)
    api.nvim_set_current_win(ask_win)
    return
  end
  vim.cmd(cmd)
  ask_win = api.nvim_get_current_win()
  api.nvim_win_set_buf(ask_win, buf)
  vim.wo[ask_win].wrap = true
  vim.wo[ask_win].linebreak = true
end

--- Stream an answer to `messages` into `buf`, from its last line (which must be empty)
--- on. Used by :LlmAsk and by the chat. `opts.on_done(ask, err, result)` runs once.
---@param buf integer
---@param messages table[]  {role, content}
---@param opts? {on_done?: fun(ask: llm_sidecar.Ask, err: table?, result: table?)}
---@return llm_sidecar.Ask
function M.stream(buf, messages, opts)
  opts = opts or {}
  local cfg = require("llm_sidecar").config
  seq = seq + 1
  local stream_id = ("nvim-%d-%d"):format(vim.fn.getpid(), seq)
  ---@type llm_sidecar.Ask
  local ask = {
    stream_id = stream_id,
    buf = buf,
    answer_row = api.nvim_buf_line_count(buf) - 1,
    text = "",
    done = false,
    cancelled = false,
    on_done = opts.on_done,
  }
  M.asks[stream_id] = ask
  M.by_buf[buf] = ask
  M.last = ask
  api.nvim_create_autocmd("BufWipeout", {
    buffer = buf,
    once = true,
    callback = function()
      if not ask.done then
        M.cancel(buf, { silent = true })
      end
      if M.by_buf[buf] == ask then
        M.by_buf[buf] = nil
      end
    end,
  })
  local params = {
    provider = cfg.provider,
    model = cfg.model,
    maxTokens = cfg.max_tokens,
    streamId = stream_id,
    messages = messages,
    system = cfg.system,
    temperature = cfg.temperature,
    -- The answer is built from the deltas: the result need not carry it again.
    omitContent = true,
  }
  rpc.request("sidecar/stream", params, function(err, result)
    M.finish(ask, err, result)
  end, function(id)
    ask.request_id = id
    if ask.cancelled then -- cancelled while the sidecar was starting
      local client = rpc.get()
      if client then
        client:cancel_request(id)
      end
    end
  end)
  return ask
end

--- The question as quoted lines, then the context's header line.
---@return string[]
function M.quote(prompt, ctx)
  local lines = {}
  for _, l in ipairs(vim.split(prompt, "\n", { plain = true })) do
    lines[#lines + 1] = l == "" and ">" or ("> " .. l)
  end
  if ctx then
    lines[#lines + 1] = "> " .. require("llm_sidecar.context").header(ctx)
  end
  return lines
end

--- Ask the model. `opts.range` = {line1, line2, whole?} of the current buffer adds those lines.
---@param prompt string
---@param opts? {range?: table}
---@return integer? bufnr of the answer
function M.ask(prompt, opts)
  opts = opts or {}
  local cfg = require("llm_sidecar").config
  prompt = vim.trim(prompt or "")
  if prompt == "" then
    vim.ui.input({ prompt = "Ask: " }, function(input)
      if input and vim.trim(input) ~= "" then
        M.ask(input, opts)
      end
    end)
    return nil
  end
  local ctx = require("llm_sidecar.context").capture(opts.range)
  local content = ctx and (prompt .. "\n\n" .. ctx.text) or prompt
  local source = { buf = api.nvim_get_current_buf(), win = api.nvim_get_current_win(), ctx = ctx }

  local n = seq + 1
  local buf = api.nvim_create_buf(true, true)
  pcall(api.nvim_buf_set_name, buf, ("llm://ask/%d/%d"):format(vim.fn.getpid(), n))
  vim.bo[buf].buftype = "nofile"
  -- An answer replaced in its window by the next one is wiped, not left to pile up.
  vim.bo[buf].bufhidden = "wipe"
  vim.bo[buf].swapfile = false
  vim.bo[buf].filetype = "markdown"
  vim.b[buf].llm_sidecar_answer = true
  local header = M.quote(prompt, ctx)
  header[#header + 1] = ""
  header[#header + 1] = ""
  api.nvim_buf_set_lines(buf, 0, -1, false, header)
  vim.bo[buf].modifiable = false
  require("llm_sidecar.apply").attach(buf, source)

  local ask = M.stream(buf, { { role = "user", content = content } })

  local keys = cfg.keymaps
  local map = function(lhs, fn, desc)
    if lhs then
      vim.keymap.set("n", lhs, fn, { buffer = buf, nowait = true, desc = desc })
    end
  end
  map(keys.stop, function() M.cancel(buf) end, "llm-sidecar: cancel this answer")
  map(keys.close, function()
    if not ask.done then
      M.cancel(buf)
    end
    pcall(vim.cmd, "close")
  end, "llm-sidecar: cancel and close")

  open_window(buf, cfg.ask_open)
  pcall(api.nvim_win_set_cursor, 0, { api.nvim_buf_line_count(buf), 0 })
  return buf
end

--- A `sidecar/streamDelta` notification.
function M.on_delta(params)
  local ask = type(params) == "table" and M.asks[params.streamId]
  if not ask or ask.done then
    return
  end
  if params.kind == "text" and type(params.text) == "string" then
    ask.text = ask.text .. params.text
    append(ask, params.text)
  elseif params.kind == "restart" then
    set_answer(ask, "")
    rpc.notify("retrying on another credential: the partial answer was cleared.", vim.log.levels.INFO)
  elseif params.kind == "fallback" then
    M.fallback(ask, params)
  end
end

--- A `fallback` delta: the provider asked cannot answer, one the user listed does.
--- Never silent: a line above the answer says where it comes from, and a WARN why.
function M.fallback(ask, params)
  local where = ("%s %s"):format(tostring(params.provider), tostring(params.model))
  set_answer(ask, "")
  if api.nvim_buf_is_valid(ask.buf) then
    with_modifiable(ask.buf, function()
      api.nvim_buf_set_lines(ask.buf, ask.answer_row, ask.answer_row, false, { "> ↪ answered by the fallback " .. where, "" })
    end)
    ask.answer_row = ask.answer_row + 2
  end
  local why = type(params.reason) == "string" and params.reason ~= "" and (": " .. params.reason) or ""
  rpc.notify(("falling back to %s%s"):format(where, why), vim.log.levels.WARN)
end

--- The answer's text in a result's content blocks (its text blocks, joined); nil
--- when the result has no content (the request said omitContent).
---@return string?
function M.answer_text(content)
  if type(content) ~= "table" then
    return nil
  end
  local parts = {}
  for _, block in ipairs(content) do
    if type(block) == "table" and block.type == "text" and type(block.text) == "string" then
      parts[#parts + 1] = block.text
    end
  end
  return table.concat(parts)
end

--- The reply to `sidecar/stream`: the final message, or an error.
function M.finish(ask, err, result)
  if ask.done then
    return
  end
  ask.done = true
  M.asks[ask.stream_id] = nil
  if err then
    if err.code == -32800 then
      ask.cancelled = true
      footer(ask, "*cancelled*")
    else
      M.report(ask, err)
    end
  else
    result = type(result) == "table" and result or {}
    local text = M.answer_text(result.content)
    if text and text ~= ask.text then
      set_answer(ask, text)
    end
    footer(ask, M.usage_line(result))
  end
  if api.nvim_buf_is_valid(ask.buf) then
    vim.bo[ask.buf].modifiable = true
  end
  if ask.on_done then
    ask.on_done(ask, err, result)
  end
end

--- An error in the buffer's footer and, with what to do, as a message.
function M.report(ask, err)
  local msg, level = rpc.describe("Asking " .. require("llm_sidecar").config.provider, err, {
    [-32602] = "Check the options given to setup() (model, max_tokens, provider).",
  })
  footer(ask, "*error: " .. tostring(err.message) .. "*")
  if not err.reported then
    rpc.say(msg, level)
  end
end

--- :LlmCancel / <C-c>: cancel the answer of `bufnr` (default: the current buffer's,
--- else the latest running one).
---@param bufnr? integer
---@param opts? {silent?: boolean}
function M.cancel(bufnr, opts)
  opts = opts or {}
  local ask = M.by_buf[bufnr or api.nvim_get_current_buf()]
  if not ask or ask.done then
    ask = nil
    if bufnr == nil and M.last and not M.last.done then
      ask = M.last
    end
  end
  if not ask then
    if not opts.silent then
      rpc.notify("nothing to cancel.", vim.log.levels.INFO)
    end
    return false
  end
  local client = rpc.get()
  if client and ask.request_id then
    client:cancel_request(ask.request_id)
  end
  -- Neovim does not pass the -32800 reply of a cancelled request on: finish here.
  ask.cancelled = true
  M.finish(ask, { code = -32800, message = "cancelled" })
  return true
end

--- The sidecar exited: every running answer ends.
function M.on_exit()
  for _, ask in pairs(M.asks) do
    M.finish(ask, { code = -32099, message = "the sidecar exited" })
  end
end

return M
