-- Start-up costs nothing; setup() starts the sidecar unattached; the statusline follows it.
local H = dofile(vim.fs.joinpath(vim.fs.dirname(debug.getinfo(1, "S").source:sub(2)), "helpers.lua"))

local COMMANDS = { "LlmLogin", "LlmLogout", "LlmKeyAdd", "LlmKeyRemove", "LlmKeyReset", "LlmStatus", "LlmAsk",
  "LlmChat", "LlmCancel", "LlmApply", "LlmModel" }

H.test("start-up defines the commands and <Plug> mappings, and runs nothing else", function()
  vim.cmd("runtime! plugin/**/*.lua plugin/**/*.vim")
  for _, cmd in ipairs(COMMANDS) do
    H.eq(vim.fn.exists(":" .. cmd), 2, ":" .. cmd .. " before setup()")
  end
  for _, plug in ipairs({ "ask", "chat", "status", "cancel", "model" }) do
    H.truthy(vim.fn.maparg("<Plug>(llm-sidecar-" .. plug .. ")", "n") ~= "", "<Plug>(llm-sidecar-" .. plug .. ")")
  end
  H.truthy(vim.fn.maparg("<Plug>(llm-sidecar-ask)", "x") ~= "", "<Plug>(llm-sidecar-ask) in Visual mode")
  for name in pairs(package.loaded) do
    H.truthy(name == "llm_sidecar.commands" or not name:match("^llm_sidecar"), "module loaded at start-up: " .. name)
  end
  H.eq(#vim.lsp.get_clients({ name = "llm_sidecar" }), 0, "clients at start-up")
  local m = require("llm_sidecar")
  H.eq(m.statusline(), "", "statusline before setup")
  H.eq(#vim.lsp.get_clients({ name = "llm_sidecar" }), 0, "clients before setup")
  for name in pairs(package.loaded) do
    H.truthy(name == "llm_sidecar" or name == "llm_sidecar.commands" or not name:match("^llm_sidecar"), "require loaded " .. name)
  end
end)

H.test("setup() starts the sidecar tied to no buffer and shows 🔑 1/2", function()
  local buf = vim.api.nvim_get_current_buf()
  H.setup()
  for _, cmd in ipairs(COMMANDS) do
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

H.test("a sidecar that dies is reported, and the next command starts it again", function()
  local children = vim.api.nvim_get_proc_children(vim.fn.getpid())
  H.eq(#children, 1, "child processes of Neovim")
  local from = #H.notes + 1
  vim.uv.kill(children[1], "sigkill")
  H.wait_status("🔑 stopped")
  local note = H.wait_note("the sidecar was killed (signal 9)", from)
  H.eq(note.level, vim.log.levels.ERROR, "level")
  H.contains(note.msg, "The next command starts it again", "what happens next")
  H.contains(note.msg, ":checkhealth llm_sidecar", "advice")
  H.contains(note.msg, "lsp.log", "names the log")
  vim.wait(300)
  H.not_contains(H.notes_text(from), "quit with exit code", "Neovim's generic message")
  -- one crash message (a late message of the previous test may come in between)
  local _, crashes = H.notes_text(from):gsub("the sidecar was killed", "")
  H.eq(crashes, 1, "crash messages:\n" .. H.notes_text(from))
  vim.cmd("LlmKeyReset")
  H.wait_status("🔑 1/2")
  H.eq(#vim.lsp.get_clients({ name = "llm_sidecar" }), 1, "clients")
end)

H.test("a sidecar that cannot start is reported with what to do", function()
  local m = require("llm_sidecar")
  local cfg = vim.deepcopy(m.config)
  vim.lsp.get_clients({ name = "llm_sidecar" })[1]:stop(true)
  H.wait(5000, function() return H.statusline() == "🔑 stopped" end, "statusline 🔑 stopped")
  vim.wait(200)
  local from = #H.notes + 1
  m.config.cmd = { "/nonexistent/llm-sidecar" }
  vim.cmd("LlmKeyReset")
  local note = H.wait_note("could not start", from)
  H.eq(note.level, vim.log.levels.ERROR, "level")
  H.contains(note.msg, "checkhealth", "advice")
  vim.wait(200)
  H.eq(#H.notes - from + 1, 1, "one notification, not one per failure:\n" .. H.notes_text(from))
  m.config = cfg
end)

H.test("bad options are refused by setup() naming the option", function()
  local ok, err = pcall(require("llm_sidecar").setup, { chat_layout = "tab" })
  H.eq(ok, false, "setup() fails")
  H.contains(err, 'llm_sidecar.setup(): chat_layout: expected "split" or "float", got tab', "message")
  ok, err = pcall(require("llm_sidecar").setup, { keymaps = { aply = "x" } })
  H.eq(ok, false, "setup() fails")
  H.contains(err, "keymaps.aply: unknown", "message")
  H.eq(require("llm_sidecar").config.chat_layout, "split", "the previous config stays")
end)

H.test("the help file has tags for every command and option and opens with :help", function()
  local rtp = vim.fn.tempname()
  vim.fn.mkdir(rtp .. "/doc", "p")
  vim.fn.writefile(vim.fn.readfile(H.root .. "/doc/llm_sidecar.txt", "b"), rtp .. "/doc/llm_sidecar.txt", "b")
  vim.v.errmsg = ""
  vim.cmd("helptags " .. vim.fn.fnameescape(rtp .. "/doc")) -- errors on duplicate tags
  H.eq(vim.v.errmsg, "", "helptags errors")
  local tags = table.concat(vim.fn.readfile(rtp .. "/doc/tags"), "\n")
  for _, tag in ipairs({ "llm_sidecar", "llm_sidecar.setup()", "llm_sidecar.statusline()", "llm_sidecar-options",
    ":LlmLogin", ":LlmLogout", ":LlmKeyAdd", ":LlmKeyRemove", ":LlmKeyReset", ":LlmStatus", ":LlmAsk", ":LlmCancel",
    ":LlmChat", ":LlmApply", ":LlmModel", "llm_sidecar-chat", "llm_sidecar-apply", "llm_sidecar-mappings",
    "llm_sidecar-health" }) do
    H.truthy(tags:find("\n" .. vim.pesc(tag) .. "\t") or tags:find("^" .. vim.pesc(tag) .. "\t"), "tag " .. tag)
  end
  vim.opt.rtp:prepend(rtp)
  vim.cmd("help :LlmAsk")
  H.contains(vim.api.nvim_buf_get_name(0), "llm_sidecar.txt", "help buffer")
  H.contains(vim.api.nvim_get_current_line(), "*:LlmAsk*", "help line")
  vim.cmd("helpclose")
end)

H.test("the committed doc/tags is what :helptags makes, so :help works without running it", function()
  -- lazy.nvim and packer run :helptags in the plugin's doc/ folder: an identical file
  -- keeps the checkout clean; a plain 'runtimepath' install runs nothing and needs it.
  local rtp = vim.fn.tempname()
  vim.fn.mkdir(rtp .. "/doc", "p")
  vim.fn.writefile(vim.fn.readfile(H.root .. "/doc/llm_sidecar.txt", "b"), rtp .. "/doc/llm_sidecar.txt", "b")
  vim.cmd("helptags " .. vim.fn.fnameescape(rtp .. "/doc"))
  H.eq(vim.fn.readfile(H.root .. "/doc/tags", "b"), vim.fn.readfile(rtp .. "/doc/tags", "b"),
    "doc/tags (regenerate: nvim --clean --headless -c 'helptags clients/nvim/doc' -c q)")
  local nvim = vim.v.progpath
  local res = vim.system({ nvim, "--clean", "--headless", "--cmd", "set rtp^=" .. H.root,
    "-c", "help llm_sidecar", "-c", "lua io.stdout:write(vim.fn.expand('%:t') .. ' ' .. vim.fn.getline('.'))", "-c", "qa!" },
    { text = true }):wait(20000)
  H.contains(res.stdout .. res.stderr, "llm_sidecar.txt", ":help llm_sidecar in a fresh Neovim")
  H.contains(res.stdout, "*llm_sidecar*", "the help line")
end)

H.done()
