-- Start-up costs nothing; setup() starts the sidecar unattached; the statusline follows it.
local H = dofile(vim.fs.joinpath(vim.fs.dirname(debug.getinfo(1, "S").source:sub(2)), "helpers.lua"))

H.test("nothing runs before setup()", function()
  vim.cmd("runtime! plugin/**/*.lua plugin/**/*.vim")
  H.eq(vim.fn.exists(":LlmAsk"), 0, ":LlmAsk before setup")
  for name in pairs(package.loaded) do
    H.truthy(not name:match("^llm_sidecar"), "module loaded at start-up: " .. name)
  end
  local m = require("llm_sidecar")
  H.eq(m.statusline(), "", "statusline before setup")
  H.eq(#vim.lsp.get_clients({ name = "llm_sidecar" }), 0, "clients before setup")
  for name in pairs(package.loaded) do
    H.truthy(name == "llm_sidecar" or not name:match("^llm_sidecar"), "require loaded " .. name)
  end
end)

H.test("setup() starts the sidecar tied to no buffer and shows 🔑 1/2", function()
  local buf = vim.api.nvim_get_current_buf()
  H.setup()
  for _, cmd in ipairs({ "LlmLogin", "LlmLogout", "LlmKeyAdd", "LlmKeyRemove", "LlmKeyReset", "LlmStatus", "LlmAsk", "LlmCancel" }) do
    H.eq(vim.fn.exists(":" .. cmd), 2, ":" .. cmd .. " defined")
  end
  H.wait_status("🔑 1/2")
  local clients = vim.lsp.get_clients({ name = "llm_sidecar" })
  H.eq(#clients, 1, "one sidecar client")
  local c = clients[1]
  H.truthy(c.initialized, "client initialized")
  H.eq(vim.tbl_count(c.attached_buffers), 0, "attached buffers")
  H.eq(#vim.lsp.get_clients({ bufnr = buf }), 0, "clients of the current buffer")
  H.eq(c.server_info and c.server_info.name, "llm-sidecar", "serverInfo.name")
  local init = c.config.init_options
  H.eq(init.editorInfo.name, "Neovim", "editorInfo.name")
  H.eq(init.editorInfo.version, ("%d.%d.%d"):format(vim.version().major, vim.version().minor, vim.version().patch), "editorInfo.version")
  H.eq(init.editorPluginInfo, { name = "llm_sidecar.nvim", version = require("llm_sidecar").version }, "editorPluginInfo")
  H.eq(package.loaded["llm_sidecar.ask"], nil, "ask module loaded before :LlmAsk")
end)

H.test("setup() again reuses the running sidecar", function()
  local before = vim.lsp.get_clients({ name = "llm_sidecar" })[1].id
  H.setup()
  local clients = vim.lsp.get_clients({ name = "llm_sidecar" })
  H.eq(#clients, 1, "clients after a second setup()")
  H.eq(clients[1].id, before, "client id")
end)

H.test("a User LlmSidecarStatus autocmd fires and the statusline text is usable in 'statusline'", function()
  vim.o.statusline = "%{v:lua.require'llm_sidecar'.statusline()}"
  local seen = {}
  vim.api.nvim_create_autocmd("User", {
    pattern = "LlmSidecarStatus",
    callback = function(ev) seen[#seen + 1] = ev.data end,
  })
  vim.cmd("LlmKeyReset")
  H.wait(5000, function() return #seen > 0 end, "a User LlmSidecarStatus event")
  H.eq(seen[#seen].text, "🔑 1/2", "event text")
  H.eq(vim.api.nvim_eval_statusline(vim.o.statusline, {}).str, "🔑 1/2", "evaluated 'statusline'")
end)

H.test("a sidecar that cannot start is reported with what to do", function()
  local from = #H.notes + 1
  local m = require("llm_sidecar")
  local cfg = vim.deepcopy(m.config)
  vim.lsp.get_clients({ name = "llm_sidecar" })[1]:stop(true)
  H.wait(5000, function() return H.statusline() == "🔑 stopped" end, "statusline 🔑 stopped")
  m.config.cmd = { "/nonexistent/llm-sidecar" }
  vim.cmd("LlmKeyReset")
  local note = H.wait_note("could not start", from)
  H.eq(note.level, vim.log.levels.ERROR, "level")
  H.contains(note.msg, "checkhealth", "advice")
  m.config = cfg
end)

H.done()
