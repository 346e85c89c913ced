--- Provider statuses: kept from `sidecar/didChangeStatus`, shown by :LlmStatus.

local M = {}

---@type table<string, table> provider -> last status {provider, kind, text, index, size, rotated, message?}
M.by_provider = {}
M.running = false
---@type table<string, {at: integer, from: integer?, to: integer, size: integer, message: string?}>
M.last_rotation = {}

local function changed(st)
  pcall(vim.api.nvim_exec_autocmds, "User", { pattern = "LlmSidecarStatus", data = st, modeline = false })
  pcall(vim.cmd, "redrawstatus!")
end

--- A new status of one provider (notification, or the status in a keyAdd/keyRemove/keyReset result).
function M.update(st)
  if type(st) ~= "table" or type(st.provider) ~= "string" then
    return
  end
  local previous = M.by_provider[st.provider]
  M.by_provider[st.provider] = st
  M.running = true
  -- The sidecar clears "(rotated)" as soon as the next key answers, so a rotation
  -- during a short answer would show nowhere: say it once, and keep it for :LlmStatus.
  if st.rotated and not (previous and previous.rotated and previous.index == st.index) then
    M.last_rotation[st.provider] = {
      at = os.time(),
      from = previous and previous.index,
      to = st.index,
      size = st.size,
      message = st.message,
    }
    require("llm_sidecar.rpc").notify(
      ("%s: %s"):format(st.provider, st.message or ("rotated to key %s of %s"):format(st.index, st.size)),
      vim.log.levels.INFO
    )
  end
  -- Cooldowns only show in the status line (a failing :LlmAsk says why);
  -- a login's outcome comes as sidecar/didEndLogin (llm_sidecar.account).
  changed(st)
end

function M.stopped()
  M.running = false
  M.by_provider = {}
  changed({ stopped = true })
end

---@param provider string
---@return string
function M.text(provider)
  local st = M.by_provider[provider]
  if st then
    return st.text or ""
  end
  if require("llm_sidecar.rpc").get() then
    return M.running and "🔑 no credentials" or "🔑 …"
  end
  return "🔑 stopped"
end

--- Every state `sidecar/status` reports (sidecar/rotation.py `State`; test_rotation.lua
--- checks they match), in words.
local state_text = {
  ok = "ok",
  expiring = "expiring",
  expired = "expired",
  coolingDown = "cooling down",
  -- never evicted: skipped until the user tops up; its message says how
  outOfCredit = "out of credit",
  rejected = "rejected",
  -- still in the pool and tried again; its message says to use an API key
  refused = "refused for this use",
}
M.state_text = state_text

--- `last rotation 14:05:00: key 1 → key 2 of 3 (rotated to key 2 of 3)`
---@param r table an entry of M.last_rotation
---@return string
function M.rotation_line(r)
  local keys = (r.from and r.from ~= r.to) and ("key %d → key %d of %d"):format(r.from, r.to, r.size)
    or ("to key %d of %d"):format(r.to, r.size)
  return ("last rotation %s: %s%s"):format(os.date("%H:%M:%S", r.at), keys, r.message and (" (" .. r.message .. ")") or "")
end

--- An RFC 3339 time from the sidecar (UTC, `…Z` or `…+00:00`) in local time, as
--- messages show it; anything else unchanged.
---@param iso string
---@return string
function M.local_time(iso)
  local y, mo, d, h, mi, sec, rest = tostring(iso):match("^(%d+)-(%d+)-(%d+)[T ](%d+):(%d+):(%d+)%.?%d*(.*)$")
  if not y then
    return tostring(iso)
  end
  local off = 0
  if rest ~= "Z" and rest ~= "" then
    local sign, oh, om = rest:match("^([+-])(%d%d):?(%d%d)$")
    if not sign then
      return tostring(iso)
    end
    off = (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == "-" and -1 or 1)
  end
  local fields = { year = tonumber(y), month = tonumber(mo), day = tonumber(d), hour = tonumber(h), min = tonumber(mi), sec = tonumber(sec), isdst = false }
  -- os.time reads the fields as local time; the difference between local and UTC
  -- readings of one instant turns that into the UTC epoch.
  local now = os.time()
  local utc_offset = os.difftime(now, os.time(os.date("!*t", now) --[[@as osdateparam]]))
  local epoch = os.time(fields) + utc_offset - off
  local today = os.date("%Y-%m-%d") == os.date("%Y-%m-%d", epoch)
  return os.date(today and "%H:%M:%S" or "%Y-%m-%d %H:%M", epoch) --[[@as string]]
end

--- One rate-limit window of a key: `sonnet requests 3/50 left (6%) · resets 14:05:00`.
---@param w table a `windows` entry of a credential in sidecar/status
---@return string
function M.window_line(w)
  local scope = w.account and "account" or (w.model or "")
  local figures = "?"
  if w.utilization then
    figures = ("%d%% used"):format(math.floor(w.utilization * 100 + 0.5))
  elseif w.limit and w.remaining then
    figures = ("%d/%d left"):format(w.remaining, w.limit)
  end
  local percent = (not w.utilization and w.percentLeft) and (" (%d%%)"):format(w.percentLeft) or ""
  local status = w.status and (", " .. w.status) or ""
  local reset = w.resetAt and (" · resets " .. M.local_time(w.resetAt)) or ""
  local low = (w.percentLeft and w.percentLeft < 10) and "⚠ " or ""
  return vim.trim(("%s%s %s %s%s%s%s"):format(low, scope, w.name, figures, percent, status, reset))
end

--- The lines of the status view (also used by tests and checkhealth).
---@param result table the result of sidecar/status
---@return string[]
function M.lines(result)
  local lines = {}
  local providers = result.providers or {}
  if #providers == 0 then
    lines[#lines + 1] = "No credentials. Log in with :LlmLogin or add a key with :LlmKeyAdd."
  end
  for _, p in ipairs(providers) do
    lines[#lines + 1] = ("%s  %s%s"):format(p.provider, p.text or "", p.message and ("  — " .. p.message) or "")
    if M.last_rotation[p.provider] then
      lines[#lines + 1] = "  " .. M.rotation_line(M.last_rotation[p.provider])
    end
    for i, c in ipairs(p.credentials or {}) do
      local state = state_text[c.state] or tostring(c.state)
      if c.state == "coolingDown" and c.cooldownUntil then
        state = state .. " until " .. M.local_time(c.cooldownUntil)
      end
      if c.expiresAt and c.state ~= "coolingDown" then
        state = state .. " (expires " .. M.local_time(c.expiresAt) .. ")"
      end
      local current = (i == p.index and c.state ~= "rejected") and "▶" or " "
      lines[#lines + 1] = ("  %s %d. %s  %s  %s  %s%s%s"):format(
        current,
        i,
        c.fingerprint or "?",
        c.kind or "",
        c.source or "",
        state,
        c.label and ("  " .. c.label) or "",
        c.message and ("  — " .. c.message) or ""
      )
      -- Headroom: what the provider last said of each window, and models resting.
      for _, w in ipairs(c.windows or {}) do
        lines[#lines + 1] = "       " .. M.window_line(w)
      end
      for _, m in ipairs(c.modelCooldowns or {}) do
        lines[#lines + 1] = ("       %s cooling down until %s%s%s"):format(
          m.model,
          M.local_time(m["until"]),
          m.reason == "overloaded" and " (overloaded)" or "",
          m.message and ("  — " .. m.message) or ""
        )
      end
    end
    lines[#lines + 1] = ""
  end
  for _, problem in ipairs(result.problems or {}) do
    lines[#lines + 1] = "problem: " .. problem
  end
  if lines[#lines] == "" then
    lines[#lines] = nil
  end
  return lines
end

--- :LlmStatus: a floating window with every provider's credentials and states.
function M.show()
  require("llm_sidecar.rpc").request("sidecar/status", nil, function(err, result)
    if err then
      return require("llm_sidecar.rpc").notify_error("Reading the status", err)
    end
    for _, p in ipairs(result.providers or {}) do
      local copy = vim.deepcopy(p)
      copy.credentials = nil
      M.by_provider[p.provider] = vim.tbl_extend("force", M.by_provider[p.provider] or {}, copy)
    end
    M.open_float(M.lines(result))
  end)
end

--- Screen lines that `lines` take in a wrapping window `width` cells wide: a long line
--- (a key's message) takes several, and counting it as one would hide the last keys.
---@param lines string[]
---@param width integer
---@return integer
function M.display_height(lines, width)
  local n = 0
  for _, l in ipairs(lines) do
    n = n + math.max(1, math.ceil(vim.fn.strdisplaywidth(l) / width))
  end
  return n
end

---@param lines string[]
---@return integer buf, integer win
function M.open_float(lines)
  local buf = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = false
  vim.bo[buf].bufhidden = "wipe"
  vim.bo[buf].filetype = "llm_sidecar_status"
  local width = 20
  for _, l in ipairs(lines) do
    width = math.max(width, vim.fn.strdisplaywidth(l))
  end
  width = math.min(width + 2, math.max(20, vim.o.columns - 4))
  local height = math.min(M.display_height(lines, width), math.max(1, vim.o.lines - 4))
  local win = vim.api.nvim_open_win(buf, true, {
    relative = "editor",
    width = width,
    height = height,
    row = math.max(0, math.floor((vim.o.lines - height) / 2) - 1),
    col = math.max(0, math.floor((vim.o.columns - width) / 2)),
    style = "minimal",
    border = "rounded",
    title = " llm-sidecar ",
    title_pos = "center",
  })
  -- 'wrap' (the default) with 'linebreak' breaks at spaces, which can take one more
  -- line than the count above: breakindent off and wrapping at any cell keep it exact.
  vim.wo[win].wrap = true
  vim.wo[win].linebreak = false
  for _, key in ipairs({ "q", "<Esc>" }) do
    vim.keymap.set("n", key, "<Cmd>close<CR>", { buffer = buf, nowait = true, desc = "close" })
  end
  return buf, win
end

return M
