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

H.test("<Plug>(llm-sidecar-ask) in Visual mode asks about the selected lines", function()
  vim.cmd("only")
  vim.cmd("enew")
  vim.bo.buftype = "nofile"
  vim.api.nvim_buf_set_lines(0, 0, -1, false, { "alpha", "beta", "gamma" })
  vim.keymap.set("x", "<leader>la", "<Plug>(llm-sidecar-ask)", { remap = true })
  local asked
  vim.ui.input = function(opts, on_confirm)
    asked = opts.prompt
    on_confirm("What are these?")
  end
  vim.api.nvim_feedkeys(vim.keycode("ggVj<leader>la"), "mx", false)
  H.wait(5000, function() return asked ~= nil end, "the prompt")
  local buf = vim.api.nvim_get_current_buf()
  H.wait(15000, function()
    local a = require("llm_sidecar.ask").by_buf[buf]
    return a ~= nil and a.done
  end, "the answer")
  H.contains(H.buf_text(buf), "> What are these?\n> 📎 [buffer ", "question")
  H.contains(H.buf_text(buf), ":1-2 (2 lines)", "the two selected lines")
end)

H.done()
