--- :checkhealth llm_sidecar

local M = {}

function M.check()
  local h = vim.health
  h.start("llm_sidecar.nvim")
  local v = vim.version()
  local vs = ("%d.%d.%d"):format(v.major, v.minor, v.patch)
  if vim.fn.has("nvim-0.11") == 1 then
    h.ok("Neovim " .. vs)
  else
    h.error("Neovim " .. vs .. " is too old", { "llm_sidecar.nvim needs Neovim 0.11 or newer" })
  end

  local plugin = require("llm_sidecar")
  local cfg = plugin.config
  if not cfg then
    h.warn("setup() was not called yet", {
      'add require("llm_sidecar").setup({}) to your config,',
      "or run any :Llm command: it sets the plugin up from vim.g.llm_sidecar (or the defaults)",
    })
    return
  end

  local exe = cfg.cmd[1]
  local path = vim.fn.exepath(exe)
  if path ~= "" then
    h.ok(("command found: %s (%s)"):format(table.concat(cfg.cmd, " "), path))
  else
    h.error(("command not found or not executable: %s"):format(exe), {
      "install llm-sidecar: pipx install llm-sidecar",
      'or point setup() at it: cmd = { "/path/to/llm-sidecar" }',
    })
    return
  end

  local rpc = require("llm_sidecar.rpc")
  local client = rpc.get() or rpc.start()
  if not client then
    h.error("the sidecar is not running", { "see :LspLog for why it stopped" })
    return
  end
  local err, result = rpc.request_sync("sidecar/status", nil, 5000)
  if err then
    local msg = rpc.describe("sidecar/status", err)
    h.error("the sidecar does not answer: " .. msg)
    return
  end
  local info = client.server_info or {}
  h.ok(("sidecar running: %s %s (client id %d)"):format(info.name or "llm-sidecar", info.version or "?", client.id))

  local found = false
  for _, p in ipairs(result.providers or {}) do
    if p.provider == cfg.provider then
      found = true
    end
    local line = ("%s: %s%s"):format(p.provider, p.text or "", p.message and (" (" .. p.message .. ")") or "")
    if p.kind == "Normal" then
      h.ok(line)
    elseif p.kind == "Warning" then
      h.warn(line, { "see :LlmStatus" })
    else
      h.error(line, { "see :LlmStatus; :LlmLogin or :LlmKeyAdd adds a credential, :LlmKeyReset clears cooldowns" })
    end
  end
  if not found then
    h.warn(("no %s credentials"):format(cfg.provider), { "log in with :LlmLogin or add a key with :LlmKeyAdd" })
  end
  for _, problem in ipairs(result.problems or {}) do
    h.warn("store problem: " .. problem)
  end
end

return M
