--- Options of setup(): the defaults, merging, validation.

local M = {}

---@class llm_sidecar.Config
---@field cmd string[]             command that starts the sidecar (stdio)
---@field cmd_env? table<string,string> extra environment for the sidecar
---@field provider string          provider used by the commands
---@field model string             model used by :LlmAsk and :LlmChat
---@field max_tokens integer       maxTokens of a request
---@field system? string           system prompt
---@field temperature? number
---@field ask_open string          Ex command that opens the window of an answer
---@field chat_layout "split"|"float" where :LlmChat opens
---@field chat_open string         Ex command that opens the chat when chat_layout = "split"
---@field keymaps table<string, string|false> keys in answer and chat buffers
M.defaults = {
  cmd = { "llm-sidecar" },
  cmd_env = nil,
  provider = "anthropic",
  model = "claude-sonnet-4-5",
  max_tokens = 4096,
  system = nil,
  temperature = nil,
  ask_open = "botright vsplit",
  chat_layout = "split",
  chat_open = "botright vsplit",
  keymaps = {
    apply = "ga", -- insert/replace the code block under the cursor in the source buffer
    send = "<CR>", -- send the chat input (normal mode; <C-s> also in insert mode)
    stop = "<C-c>",
    close = "q",
  },
}

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
  vim.validate("chat_open", cfg.chat_open, "string")
  vim.validate("chat_layout", cfg.chat_layout, function(v)
    return v == "split" or v == "float"
  end, false, '"split" or "float"')
  vim.validate("keymaps", cfg.keymaps, "table")
  for name, lhs in pairs(cfg.keymaps) do
    if M.defaults.keymaps[name] == nil then
      error(("keymaps.%s: unknown (known: apply, send, stop, close)"):format(name), 0)
    end
    vim.validate("keymaps." .. name, lhs, function(v)
      return v == false or (type(v) == "string" and v ~= "")
    end, false, "a key or false")
  end
end

--- The defaults overridden by `opts`; raises a readable error on a bad option.
---@param opts? table
---@return llm_sidecar.Config
function M.build(opts)
  local cfg = vim.tbl_deep_extend("force", vim.deepcopy(M.defaults), opts or {})
  -- vim.validate raises "cmd: expected table, got string": say whose option it is.
  local ok, err = pcall(validate, cfg)
  if not ok then
    error("llm_sidecar.setup(): " .. tostring(err):gsub("^[^:]*:%d+: ", ""), 0)
  end
  return cfg
end

return M
