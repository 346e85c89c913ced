--- Logins and the key pool: :LlmLogin, :LlmLogout, :LlmKeyAdd, :LlmKeyRemove, :LlmKeyReset.

local M = {}

local rpc = require("llm_sidecar.rpc")
local INFO, WARN = vim.log.levels.INFO, vim.log.levels.WARN

---@type table<string, table> provider -> the login in progress {loginId, url, mode}
M.logins = {}

local function provider()
  return require("llm_sidecar").config.provider
end

function M.login_pending(name)
  return M.logins[name] ~= nil
end

local LEVELS = { succeeded = INFO, cancelled = INFO, superseded = WARN, failed = vim.log.levels.ERROR }

--- `sidecar/didEndLogin`: a login ended (browser callback, paste, cancel, timeout, or a
--- newer login for its profile). The pending login it names is over; its outcome is shown
--- unless a paste in progress reports it itself.
---@param ev {loginId: string, provider: string, profile: string, outcome: string, message: string}
function M.login_ended(ev)
  if type(ev) ~= "table" then
    return
  end
  local login = M.logins[ev.provider]
  if not login or login.loginId ~= ev.loginId then
    return -- ended by us (a paste, a cancel), and already said so
  end
  M.logins[ev.provider] = nil
  if login.completing then
    return -- the answer to sidecar/loginComplete says how it went
  end
  local text = ev.message or ("login " .. tostring(ev.outcome))
  if ev.outcome == "succeeded" then
    text = text .. ". :LlmKeyAdd login adds this login to the key pool."
  end
  rpc.notify(text, LEVELS[ev.outcome] or INFO)
end

local function update_status(st)
  if type(st) == "table" and st.provider then
    require("llm_sidecar.status").update(st)
  end
end

local function finish_login(name)
  M.logins[name] = nil
end

--- Ask for the pasted `code#state` (or the redirect URL) and complete the login.
local function prompt_paste(name, login)
  vim.ui.input({ prompt = "Paste the code shown after signing in (code#state): " }, function(input)
    input = input and vim.trim(input) or ""
    if M.logins[name] ~= login then
      return -- finished meanwhile (the browser callback arrived)
    end
    if input == "" then
      finish_login(name) -- before the cancel's didEndLogin: this note is the one shown
      rpc.request("sidecar/loginCancel", { loginId = login.loginId }, function() end)
      return rpc.notify("login cancelled.", INFO)
    end
    login.completing = true
    rpc.request("sidecar/loginComplete", { loginId = login.loginId, input = input }, function(err, result)
      finish_login(name)
      if err then
        return rpc.notify_error("Logging in to " .. name, err)
      end
      update_status(type(result) == "table" and result.status or nil)
      rpc.notify(("logged in to %s. :LlmKeyAdd login adds this login to the key pool."):format(name), INFO)
    end)
  end)
end

--- :LlmLogin [auto|paste]
---@param mode? "auto"|"paste"
function M.login(mode)
  local name = provider()
  if mode and mode ~= "auto" and mode ~= "paste" then
    return rpc.notify(("unknown login mode %q: use :LlmLogin, :LlmLogin auto or :LlmLogin paste."):format(mode), WARN)
  end
  local params = { provider = name, mode = mode }
  rpc.request("sidecar/login", params, function(err, result)
    if err then
      return rpc.notify_error("Starting the login to " .. name, err)
    end
    local login = { loginId = result.loginId, url = result.url, mode = result.mode or mode or "auto" }
    M.logins[name] = login
    -- A browser login that never comes back stops counting as pending after 10 minutes.
    vim.defer_fn(function()
      if M.logins[name] == login then
        M.logins[name] = nil
      end
    end, 10 * 60 * 1000)
    if login.mode == "paste" then
      -- The sidecar opens the page through window/showDocument (Neovim supports it).
      rpc.notify(("sign in at %s, then paste the code you are shown."):format(login.url or "the page that opened"), INFO)
      prompt_paste(name, login)
    else
      rpc.notify(
        ("sign in in your browser: %s (waiting for it; :LlmLogin paste if the browser is on another machine)."):format(login.url or ""),
        INFO
      )
    end
  end)
end

--- The server asks to open a URL (the login page): window/showDocument.
---@param params {uri: string, external?: boolean}
---@return {success: boolean}
function M.show_document(params)
  local uri = params and params.uri
  if type(uri) ~= "string" or not uri:match("^https?://") then
    return { success = false }
  end
  for _, login in pairs(M.logins) do
    if login.url == uri then
      if login.opened then
        return { success = true } -- asked twice for one login: one browser tab is enough
      end
      login.opened = true
    end
  end
  local cmd, err = vim.ui.open(uri)
  if not cmd then
    rpc.notify(("could not open a browser (%s): open %s yourself."):format(err or "no opener", uri), WARN)
    for name, login in pairs(M.logins) do
      if login.url == uri then
        vim.schedule(function() prompt_paste(name, login) end)
      end
    end
    return { success = false }
  end
  return { success = true }
end

--- :LlmLogout
function M.logout()
  local name = provider()
  rpc.request("sidecar/logout", { provider = name }, function(err, result)
    if err then
      return rpc.notify_error("Logging out of " .. name, err)
    end
    update_status(type(result) == "table" and result.status or nil)
    rpc.notify(("logged out of %s."):format(name), INFO)
  end)
end

--- :LlmKeyAdd [login]: add a key typed with inputsecret() (never echoed, never in
--- history), or with "login" the provider's current login.
---@param arg? string
function M.key_add(arg)
  local name = provider()
  arg = vim.trim(arg or "")
  local params = { provider = name }
  if arg == "login" then
    -- the current login: no key in the params
  elseif arg ~= "" then
    return rpc.notify(
      ":LlmKeyAdd takes no key on the command line (it would stay in the history): run :LlmKeyAdd and type it at the hidden prompt, or :LlmKeyAdd login.",
      WARN
    )
  else
    local ok, key = pcall(vim.fn.inputsecret, ("%s API key (hidden; empty to cancel): "):format(name))
    key = ok and vim.trim(key or "") or ""
    if key == "" then
      return rpc.notify("no key entered: nothing added. (:LlmKeyAdd login adds the current login.)", INFO)
    end
    params.key = key
  end
  rpc.request("sidecar/keyAdd", params, function(err, result)
    if err then
      if params.key then
        return rpc.notify_error("Adding the key", err)
      end
      return rpc.notify_error("Adding the current login", err, {
        [-32602] = "Log in with :LlmLogin first, or run :LlmKeyAdd and type a key.",
      })
    end
    update_status(result.status)
    local fp = result.credential and result.credential.fingerprint or "?"
    local text = result.status and result.status.text or ""
    if result.added then
      rpc.notify(("added %s to the %s pool: %s"):format(fp, name, text), INFO)
    else
      rpc.notify(("%s is already in the %s pool: %s"):format(fp, name, text), INFO)
    end
  end)
end

local function describe(c)
  local s = ("%s  (%s, %s)"):format(c.fingerprint or "?", c.source or "?", c.state or "?")
  if c.label then
    s = s .. "  " .. c.label
  end
  return s
end

--- The variables that environment keys come from, e.g. {"ANTHROPIC_API_KEYS"}.
local function env_vars(creds)
  local seen, vars = {}, {}
  for _, c in ipairs(creds) do
    local var = tostring(c.id or ""):match("^env:([%w_]+)")
    if c.source == "env" and var and not seen[var] then
      seen[var] = true
      vars[#vars + 1] = var
    end
  end
  return vars
end

--- Environment keys cannot be removed from here: say so in plain words.
local function env_explanation(creds)
  local vars = env_vars(creds)
  local n = 0
  for _, c in ipairs(creds) do
    n = n + (c.source == "env" and 1 or 0)
  end
  if n == 0 then
    return nil
  end
  return ("%d key%s come%s from your environment (%s): the sidecar only reads %s. "
    .. "To stop using %s, delete %s from your shell profile or .env file and restart Neovim."):format(
    n,
    n == 1 and "" or "s",
    n == 1 and "s" or "",
    table.concat(vars, ", "),
    n == 1 and "it" or "them",
    n == 1 and "it" or "them",
    n == 1 and "it" or "them"
  )
end

--- :LlmKeyRemove: pick a credential (fingerprints only) with vim.ui.select. Only the
--- ones the sidecar can remove (its store: pool and logins) are offered.
function M.key_remove()
  local name = provider()
  rpc.request("sidecar/keyList", { provider = name }, function(err, result)
    if err then
      return rpc.notify_error("Listing the keys", err)
    end
    local creds, removable = result.credentials or {}, {}
    for _, c in ipairs(creds) do
      if c.source ~= "env" then
        removable[#removable + 1] = c
      end
    end
    local env_note = env_explanation(creds)
    if #removable == 0 then
      return rpc.notify(("no %s key to remove here. %s"):format(name, env_note or "(:LlmStatus lists them.)"), INFO)
    end
    if env_note then
      rpc.notify(env_note, INFO)
    end
    vim.ui.select(removable, {
      prompt = ("Remove which %s credential?"):format(name),
      format_item = describe,
      kind = "llm_sidecar.credential",
    }, function(choice)
      if not choice then
        return
      end
      rpc.request("sidecar/keyRemove", { provider = name, fingerprint = choice.id }, function(e, r)
        if e then
          return rpc.notify_error("Removing " .. (choice.fingerprint or choice.id), e)
        end
        update_status(r.status)
        rpc.notify(("removed %s: %s"):format(r.removed and r.removed.fingerprint or choice.fingerprint, r.status and r.status.text or ""), INFO)
      end)
    end)
  end)
end

--- :LlmKeyReset
function M.key_reset()
  local name = provider()
  rpc.request("sidecar/keyReset", { provider = name }, function(err, result)
    if err then
      return rpc.notify_error("Resetting the " .. name .. " keys", err)
    end
    update_status(result)
    rpc.notify(("%s: back to the first key, cooldowns cleared: %s"):format(name, result.text or ""), INFO)
  end)
end

--- :LlmPolicy [sticky|primary]: no argument says which policy is in force.
function M.policy(choice)
  local name = provider()
  rpc.request("sidecar/policy", { provider = name, policy = choice }, function(err, result)
    if err then
      return rpc.notify_error("The " .. name .. " key policy", err)
    end
    local what = result.policy == "primary" and "back to the first key as soon as it is usable"
      or "stays on the key that answers"
    rpc.notify(("%s key policy: %s (%s)"):format(name, result.policy, what), INFO)
  end)
end

return M
