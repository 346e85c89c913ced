--- llm_sidecar.nvim: talk to the llm-sidecar process from Neovim.
---
--- Nothing here runs at start-up: requiring this module defines functions only,
--- and the submodules are loaded on first use. `setup()` starts the sidecar and
--- defines the user commands.

local M = {}

M.version = "0.1.0"

---@class llm_sidecar.Config
---@field cmd string[]             command that starts the sidecar (stdio)
---@field cmd_env? table<string,string> extra environment for the sidecar
---@field provider string          provider used by the commands
---@field model string             model used by :LlmAsk
---@field max_tokens integer       maxTokens of :LlmAsk
---@field system? string           system prompt of :LlmAsk
---@field temperature? number
---@field ask_open string          Ex command that opens the window of an answer
local defaults = {
  cmd = { "llm-sidecar" },
  cmd_env = nil,
  provider = "anthropic",
  model = "claude-sonnet-4-5",
  max_tokens = 4096,
  system = nil,
  temperature = nil,
  ask_open = "botright vsplit",
}

---@type llm_sidecar.Config?
M.config = nil

local function validate(cfg)
  vim.validate("cmd", cfg.cmd, "table")
  vim.validate("cmd[1]", cfg.cmd[1], "string")
  vim.validate("cmd_env", cfg.cmd_env, "table", true)
  vim.validate("provider", cfg.provider, "string")
  vim.validate("model", cfg.model, "string")
  vim.validate("max_tokens", cfg.max_tokens, "number")
  vim.validate("system", cfg.system, "string", true)
  vim.validate("temperature", cfg.temperature, "number", true)
  vim.validate("ask_open", cfg.ask_open, "string")
end

local commands = {
  LlmLogin = {
    function(o) require("llm_sidecar.account").login(o.args ~= "" and o.args or nil) end,
    { nargs = "?", complete = function() return { "auto", "paste" } end,
      desc = "llm-sidecar: log in (OAuth) to the provider" },
  },
  LlmLogout = {
    function() require("llm_sidecar.account").logout() end,
    { desc = "llm-sidecar: log out of the provider" },
  },
  LlmKeyAdd = {
    function(o) require("llm_sidecar.account").key_add(o.args) end,
    { nargs = "?", complete = function() return { "login" } end,
      desc = "llm-sidecar: add a key (typed hidden) or the current login to the pool" },
  },
  LlmKeyRemove = {
    function() require("llm_sidecar.account").key_remove() end,
    { desc = "llm-sidecar: remove a credential from the pool" },
  },
  LlmKeyReset = {
    function() require("llm_sidecar.account").key_reset() end,
    { desc = "llm-sidecar: back to the first key, cooldowns cleared" },
  },
  LlmStatus = {
    function() require("llm_sidecar.status").show() end,
    { desc = "llm-sidecar: show credentials and their states" },
  },
  LlmAsk = {
    function(o)
      local range = o.range > 0 and { o.line1, o.line2 } or nil
      require("llm_sidecar.ask").ask(o.args, { range = range })
    end,
    { nargs = "*", range = true, desc = "llm-sidecar: ask the model, stream the answer" },
  },
  LlmCancel = {
    function() require("llm_sidecar.ask").cancel() end,
    { desc = "llm-sidecar: cancel the running :LlmAsk" },
  },
}

--- Start the sidecar and define the commands. Calling it again applies new options.
---@param opts? table
function M.setup(opts)
  local cfg = vim.tbl_deep_extend("force", vim.deepcopy(defaults), opts or {})
  validate(cfg)
  M.config = cfg
  for name, def in pairs(commands) do
    vim.api.nvim_create_user_command(name, def[1], def[2])
  end
  require("llm_sidecar.rpc").start()
end

--- The status-bar text of the configured provider (or `provider`), e.g. `🔑 1/2`.
--- Empty before setup(). Cheap: meant for 'statusline' and statusline plugins.
---@param provider? string
---@return string
function M.statusline(provider)
  if not M.config then
    return ""
  end
  return require("llm_sidecar.status").text(provider or M.config.provider)
end

--- Ask the model; the answer streams into a scratch Markdown buffer.
---@param prompt string
---@return integer? bufnr
function M.ask(prompt, opts)
  return require("llm_sidecar.ask").ask(prompt, opts)
end

--- Cancel the answer of buffer `bufnr` (default: the current one, else the latest).
function M.cancel(bufnr)
  return require("llm_sidecar.ask").cancel(bufnr)
end

--- The running vim.lsp client of the sidecar, if any.
---@return vim.lsp.Client?
function M.client()
  return require("llm_sidecar.rpc").get()
end

return M
