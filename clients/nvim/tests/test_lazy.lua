-- Installed the lazy way: only plugin/ is sourced, and a command comes before setup().
local H = dofile(vim.fs.joinpath(vim.fs.dirname(debug.getinfo(1, "S").source:sub(2)), "helpers.lua"))

vim.cmd("runtime! plugin/**/*.lua")

H.test("a command before setup() sets the plugin up from vim.g.llm_sidecar", function()
  H.eq(require("llm_sidecar").config, nil, "config before the command")
  vim.g.llm_sidecar = { cmd = { H.python, "-m", "sidecar" }, model = "claude-haiku-4-5" }
  vim.cmd("LlmKeyReset")
  H.wait_status("🔑 1/2")
  H.eq(require("llm_sidecar").config.model, "claude-haiku-4-5", "model from vim.g.llm_sidecar")
  H.eq(#vim.lsp.get_clients({ name = "llm_sidecar" }), 1, "one sidecar")
end)

H.test("<Plug>(llm-sidecar-status) opens the status float", function()
  vim.keymap.set("n", "<leader>ls", "<Plug>(llm-sidecar-status)", { remap = true })
  local before = vim.api.nvim_get_current_win()
  vim.api.nvim_feedkeys(vim.keycode("<leader>ls"), "mx", false)
  H.wait(5000, function()
    local win = vim.api.nvim_get_current_win()
    return win ~= before and vim.api.nvim_win_get_config(win).relative ~= ""
  end, "the float")
  H.contains(H.buf_text(0), "anthropic  🔑 1/2", "status view")
  vim.cmd("close")
end)

H.done()
