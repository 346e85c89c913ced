--- The user commands and <Plug> mappings. Loaded at start-up by plugin/llm_sidecar.lua,
--- so it only defines them: every callback requires its module on first use.

local M = {}

--- Run `fn` once the plugin is set up: a command used before setup() sets it up
--- with `vim.g.llm_sidecar` (or the defaults), so that lazy-loading on a command works.
local function run(fn)
  return function(o)
    local plugin = require("llm_sidecar")
    if not plugin.config then
      plugin.setup(vim.g.llm_sidecar)
    end
    fn(o)
  end
end

--- The range of a command: nil, or {line1, line2, whole = true when it was `%`}.
local function range_of(o)
  if o.range == 0 then
    return nil
  end
  local whole = o.line1 == 1 and o.line2 == vim.api.nvim_buf_line_count(0) and vim.api.nvim_buf_line_count(0) > 1
  return { o.line1, o.line2, whole = whole }
end

M.specs = {
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
  LlmPolicy = {
    function(o) require("llm_sidecar.account").policy(o.args ~= "" and o.args or nil) end,
    { nargs = "?", complete = function() return { "sticky", "primary" } end,
      desc = "llm-sidecar: which key when (sticky or primary); no argument shows it" },
  },
  LlmStatus = {
    function() require("llm_sidecar.status").show() end,
    { desc = "llm-sidecar: show credentials and their states" },
  },
  LlmAsk = {
    function(o) require("llm_sidecar.ask").ask(o.args, { range = range_of(o) }) end,
    { nargs = "*", range = true, desc = "llm-sidecar: ask the model, stream the answer" },
  },
  LlmChat = {
    function(o) require("llm_sidecar.chat").open({ range = range_of(o), prompt = o.args, new = o.bang }) end,
    { nargs = "*", range = true, bang = true, desc = "llm-sidecar: open the chat (! a new one; a range attaches those lines)" },
  },
  LlmCancel = {
    function() require("llm_sidecar.ask").cancel() end,
    { desc = "llm-sidecar: cancel the running answer" },
  },
  LlmApply = {
    function() require("llm_sidecar.apply").apply() end,
    { desc = "llm-sidecar: put the code block under the cursor into the source buffer" },
  },
  LlmModel = {
    function(o) require("llm_sidecar.models").pick(o.args ~= "" and o.args or nil) end,
    { nargs = "?", desc = "llm-sidecar: choose the model (vim.ui.select)" },
  },
}

--- <Plug> mappings: users map their own keys to these (README has suggestions).
local plugs = {
  { { "n" }, "<Plug>(llm-sidecar-ask)", "<Cmd>LlmAsk<CR>", "ask" },
  { { "x" }, "<Plug>(llm-sidecar-ask)", ":LlmAsk<CR>", "ask about the selection" },
  { { "n" }, "<Plug>(llm-sidecar-chat)", "<Cmd>LlmChat<CR>", "open the chat" },
  { { "x" }, "<Plug>(llm-sidecar-chat)", ":LlmChat<CR>", "chat about the selection" },
  { { "n" }, "<Plug>(llm-sidecar-status)", "<Cmd>LlmStatus<CR>", "status" },
  { { "n" }, "<Plug>(llm-sidecar-cancel)", "<Cmd>LlmCancel<CR>", "cancel the answer" },
  { { "n" }, "<Plug>(llm-sidecar-model)", "<Cmd>LlmModel<CR>", "choose the model" },
}

function M.define()
  for name, def in pairs(M.specs) do
    vim.api.nvim_create_user_command(name, run(def[1]), def[2])
  end
  for _, p in ipairs(plugs) do
    vim.keymap.set(p[1], p[2], p[3], { silent = true, desc = "llm-sidecar: " .. p[4] })
  end
end

return M
