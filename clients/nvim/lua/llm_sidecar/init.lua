--- llm_sidecar.nvim: talk to the llm-sidecar process from Neovim.
---
--- Nothing here runs at start-up: requiring this module defines functions only,
--- and the submodules are loaded on first use. plugin/llm_sidecar.lua defines the
--- commands; `setup()` (or the first command) starts the sidecar.

local M = {}

M.version = "0.1.0"

---@type llm_sidecar.Config?
M.config = nil

--- Start the sidecar and define the commands. Calling it again applies new options.
---@param opts? table
function M.setup(opts)
  M.config = require("llm_sidecar.config").build(opts)
  -- plugin/llm_sidecar.lua defines them too; this is for setups that skip plugin/
  -- (e.g. `-u NONE`, or 'loadplugins' off).
  require("llm_sidecar.commands").define()
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
