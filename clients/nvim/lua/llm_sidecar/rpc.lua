--- The sidecar process: a vim.lsp client tied to no buffer, requests, errors.

local M = {}

---@type integer?
M.client_id = nil
local pending = {} ---@type fun()[] requests made before `initialize` was answered

local function config()
  return require("llm_sidecar").config
end

--- What to do about each sidecar error code (docs/protocol.md, "Errors").
local advice = {
  [-32001] = { vim.log.levels.WARN, "Log in with :LlmLogin or add a key with :LlmKeyAdd." },
  [-32002] = { vim.log.levels.WARN, "Wait for the cooldown, or add another key with :LlmKeyAdd." },
  [-32003] = { vim.log.levels.ERROR, "See :LlmStatus; add a valid key with :LlmKeyAdd or log in again with :LlmLogin." },
  [-32004] = { vim.log.levels.ERROR, "Check the request (model name in setup()) or try again later." },
  [-32005] = { vim.log.levels.ERROR, "Try :LlmLogin again, or :LlmLogin paste." },
  [-32006] = { vim.log.levels.ERROR, "Check the sidecar's files and their permissions (:checkhealth llm_sidecar)." },
  [-32601] = { vim.log.levels.ERROR, "This llm-sidecar is too old for the plugin: update it." },
  [-32602] = { vim.log.levels.ERROR, "" }, -- the message names the field; callers add advice
  [-32603] = { vim.log.levels.ERROR, "This is a bug in llm-sidecar: please report it (details in :LspLog)." },
  [-32099] = { vim.log.levels.ERROR, "Run :checkhealth llm_sidecar." }, -- ours: not running
}

--- The error as one line a user can act on, and its level.
---@param what string  what was being done, e.g. "Adding the key"
---@param err table    JSON-RPC error {code, message, data?}
---@param extra? table<integer, string>  advice for some codes in this context
---@return string, integer
function M.describe(what, err, extra)
  local a = advice[err.code] or { vim.log.levels.ERROR, "See :LspLog for details." }
  if extra and extra[err.code] then
    a = { a[1], extra[err.code] }
  end
  local msg = tostring(err.message or "unknown error")
  local data = type(err.data) == "table" and err.data or {}
  if err.code == -32004 and data.status and not msg:find(tostring(data.status), 1, true) then
    msg = ("%s answered %s: %s"):format(data.provider or "provider", data.status, msg)
  end
  msg = msg:gsub("[%.%s]+$", "")
  return vim.trim(("llm-sidecar: %s failed: %s. %s"):format(what, msg, a[2])), a[1]
end

--- One line, always: a message of several lines (or one sent from a callback while
--- another is shown) makes Neovim's message area ask for "Press ENTER".
local function one_line(msg)
  return (tostring(msg):gsub("%s*\n%s*", " "))
end

--- Every message of the plugin goes through here (llm_sidecar.notify: vim.notify, and
--- no hit-enter prompt with the built-in one), scheduled so that it never lands in
--- the middle of a prompt.
---@param msg string
---@param level? integer
function M.say(msg, level)
  msg = one_line(msg)
  vim.schedule(function()
    require("llm_sidecar.notify").show(msg, level or vim.log.levels.INFO)
  end)
end

function M.notify_error(what, err, extra)
  if err.reported then
    return
  end
  local msg, level = M.describe(what, err, extra)
  M.say(msg, level)
end

function M.notify(msg, level)
  M.say("llm-sidecar: " .. msg, level)
end

---@return vim.lsp.Client?
function M.get()
  local client = M.client_id and vim.lsp.get_client_by_id(M.client_id)
  if client and not client:is_stopped() then
    return client
  end
  return nil
end

local function handlers()
  return {
    ["sidecar/didChangeStatus"] = function(_, params)
      require("llm_sidecar.status").update(params)
    end,
    ["sidecar/didEndLogin"] = function(_, params)
      require("llm_sidecar.account").login_ended(params)
    end,
    ["sidecar/streamDelta"] = function(_, params)
      require("llm_sidecar.ask").on_delta(params)
    end,
    ["window/showDocument"] = function(_, params)
      return require("llm_sidecar.account").show_document(params)
    end,
  }
end

--- Start the sidecar (or find the running one).
---@return vim.lsp.Client?
function M.start()
  local existing = M.get()
  if existing then
    return existing
  end
  local cfg = config()
  local plugin = require("llm_sidecar")
  local v = vim.version()
  local exit = {} ---@type {code?: integer, signal?: integer}
  local id = vim.lsp.start({
    name = "llm_sidecar",
    -- A function, so that the exit code reaches our own message first: Neovim's
    -- ("Client quit with exit code…") says nothing about what to do, so it is given 0.
    cmd = function(dispatchers)
      local own = vim.deepcopy(dispatchers)
      own.on_exit = function(code, signal)
        exit.code, exit.signal = code, signal
        dispatchers.on_exit(0, 0)
      end
      return vim.lsp.rpc.start(cfg.cmd, own, { env = cfg.cmd_env })
    end,
    init_options = {
      editorInfo = { name = "Neovim", version = ("%d.%d.%d"):format(v.major, v.minor, v.patch) },
      editorPluginInfo = { name = "llm_sidecar.nvim", version = plugin.version },
    },
    handlers = handlers(),
    on_init = function()
      local queued = pending
      pending = {}
      for _, send in ipairs(queued) do
        send()
      end
    end,
    on_exit = function(_, _, client_id)
      vim.schedule(function()
        if M.client_id ~= client_id then
          return
        end
        M.client_id = nil
        pending = {}
        require("llm_sidecar.ask").on_exit()
        require("llm_sidecar.status").stopped()
        if (exit.code or 0) ~= 0 or (exit.signal or 0) ~= 0 and exit.signal ~= 15 then
          M.notify(M.crash_message(exit.code or 0, exit.signal or 0), vim.log.levels.ERROR)
        end
      end)
    end,
  }, { attach = false, silent = true })
  if not id then
    M.notify(
      ("could not start %q: install llm-sidecar (pipx install llm-sidecar) or set `cmd` in setup(). Run :checkhealth llm_sidecar."):format(
        table.concat(cfg.cmd, " ")
      ),
      vim.log.levels.ERROR
    )
    return nil
  end
  M.client_id = id
  return M.get()
end

--- What a crashed sidecar means to the user, and what to do about it.
function M.crash_message(code, signal)
  local how = signal ~= 0 and ("was killed (signal %d)"):format(signal) or ("exited with code %d"):format(code)
  return ("the sidecar %s; an answer in progress was stopped. The next command starts it again. "
    .. "If it keeps happening, run :checkhealth llm_sidecar and see the sidecar's messages in %s."):format(
    how,
    vim.lsp.get_log_path()
  )
end

--- Send a request; `cb(err, result)` runs once with the reply. Starts the sidecar if needed.
--- Returns the request id (for cancel_request) when it was sent at once.
---@param method string
---@param params table?  nil or empty: sent as {} (an object, never [])
---@param cb fun(err: table?, result: any)
---@param on_id? fun(id: integer)  called with the request id once it is sent
---@return integer?
function M.request(method, params, cb, on_id)
  if params == nil or (type(params) == "table" and next(params) == nil) then
    params = vim.empty_dict()
  end
  if not require("llm_sidecar").config then
    cb({ code = -32099, message = "the plugin is not set up: call require('llm_sidecar').setup()" })
    return nil
  end
  local client = M.get() or M.start()
  if not client then
    -- start() has told the user why; `reported` keeps notify_error from saying it twice
    cb({ code = -32099, message = "the sidecar could not be started", reported = true })
    return nil
  end
  local function send()
    local ok, id = client:request(method, params, function(err, result)
      cb(err, result)
    end)
    if not ok then
      cb({ code = -32099, message = "the sidecar is not running" })
      return nil
    end
    if on_id then
      on_id(id)
    end
    return id
  end
  if client.initialized then
    return send()
  end
  pending[#pending + 1] = send
  return nil
end

--- Request and wait (for checkhealth). Returns err, result.
function M.request_sync(method, params, timeout_ms)
  local done, e, r = false, nil, nil
  M.request(method, params, function(err, result)
    done, e, r = true, err, result
  end)
  if not vim.wait(timeout_ms or 3000, function() return done end, 10) then
    return { code = -32099, message = "no answer within " .. (timeout_ms or 3000) .. " ms" }, nil
  end
  return e, r
end

return M
