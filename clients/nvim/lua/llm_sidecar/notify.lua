--- Messages without "Press ENTER". Neovim's own vim.notify echoes, and a message wider
--- than the command line wraps and stops everything for a hit-enter prompt. With a
--- notification plugin (nvim-notify, noice, fidget… replace vim.notify) messages go to
--- it; with the built-in one, a message that does not fit is echoed cut to one line
--- (into :messages) and shown whole in a small float at the top right for a while.

local M = {}

local api = vim.api
M.timeout_ms = 8000
local toast ---@type {win: integer, buf: integer, timer: uv.uv_timer_t}?

local function builtin_notify()
  local info = debug.getinfo(vim.notify, "S")
  return info and info.source:find("vim/_editor.lua", 1, true) ~= nil
end

local hl = {
  [vim.log.levels.ERROR] = "ErrorMsg",
  [vim.log.levels.WARN] = "WarningMsg",
}

function M.close_toast()
  if toast then
    pcall(api.nvim_win_close, toast.win, true)
    pcall(function() toast.timer:stop() toast.timer:close() end)
    toast = nil
  end
end

--- The whole messages in a float that takes no focus and closes by itself.
---@param msgs string[]
local function show_toast(msgs, level)
  M.close_toast()
  local width = math.min(72, math.max(20, vim.o.columns - 4))
  local height = 0
  for _, m in ipairs(msgs) do
    height = height + math.max(1, math.ceil(vim.fn.strdisplaywidth(m) / (width - 2)) + 1)
  end
  local buf = api.nvim_create_buf(false, true)
  vim.bo[buf].bufhidden = "wipe"
  api.nvim_buf_set_lines(buf, 0, -1, false, msgs)
  local win = api.nvim_open_win(buf, false, {
    relative = "editor",
    anchor = "NE",
    row = 1,
    col = vim.o.columns - 1,
    width = width,
    height = math.min(height, math.max(1, vim.o.lines - 4)),
    style = "minimal",
    border = "rounded",
    focusable = false,
    noautocmd = true,
    zindex = 250,
    title = " llm-sidecar ",
  })
  vim.wo[win].wrap = true
  vim.wo[win].linebreak = true
  vim.wo[win].winhighlight = "Normal:" .. (hl[level] or "NormalFloat")
  local timer = assert(vim.uv.new_timer())
  timer:start(M.timeout_ms, 0, vim.schedule_wrap(function()
    if toast and toast.win == win then
      M.close_toast()
    end
  end))
  toast = { win = win, buf = buf, timer = timer }
end

local queue = {} ---@type {msg: string, level: integer}[]

--- One echo per turn of the event loop: two echoes in a row also make a hit-enter
--- prompt, so several messages at once go to the float together.
local function flush()
  local msgs, level = {}, vim.log.levels.DEBUG
  for _, q in ipairs(queue) do
    if msgs[#msgs] ~= q.msg then -- the same failure twice (e.g. setup, then the command)
      msgs[#msgs + 1] = q.msg
    end
    level = math.max(level, q.level)
  end
  queue = {}
  local last = msgs[#msgs]
  local room = vim.v.echospace - 1
  if #msgs == 1 and vim.fn.strdisplaywidth(last) <= room then
    return vim.notify(last, level)
  end
  show_toast(msgs, level)
  -- :messages keeps the line cut to the screen; the float shows it whole.
  local cut = last
  if vim.fn.strdisplaywidth(cut) > room then
    cut = vim.fn.strcharpart(cut, 0, math.max(10, room - 2))
    while vim.fn.strdisplaywidth(cut .. "…") > room and #cut > 0 do
      cut = vim.fn.strcharpart(cut, 0, vim.fn.strchars(cut) - 1)
    end
    cut = cut .. "…"
  end
  vim.notify(cut, level)
end

--- Show `msg` (one line) at `level`.
---@param msg string
---@param level integer
function M.show(msg, level)
  if not builtin_notify() then
    return vim.notify(msg, level, { title = "llm-sidecar" })
  end
  queue[#queue + 1] = { msg = msg, level = level }
  if #queue == 1 then
    vim.schedule(flush)
  end
end

--- The text of the float shown now, if any (for tests and :checkhealth).
---@return string?
function M.toast_text()
  if toast and api.nvim_win_is_valid(toast.win) then
    return table.concat(api.nvim_buf_get_lines(toast.buf, 0, -1, false), "\n")
  end
  return nil
end

return M
