-- :checkhealth llm_sidecar
local H = dofile(vim.fs.joinpath(vim.fs.dirname(debug.getinfo(1, "S").source:sub(2)), "helpers.lua"))

local function checkhealth()
  local tab = vim.api.nvim_get_current_tabpage()
  vim.cmd("tabnew")
  vim.cmd("checkhealth llm_sidecar")
  H.wait(10000, function()
    return vim.bo.filetype == "checkhealth" and H.buf_text(0):find("llm_sidecar.nvim", 1, true) ~= nil
  end, "the checkhealth report")
  local text = H.buf_text(0)
  vim.api.nvim_set_current_tabpage(tab)
  vim.cmd("tabonly!")
  return text
end

H.test("before setup() it says to call setup()", function()
  local text = checkhealth()
  H.contains(text, "WARNING setup() was not called", "report")
  H.contains(text, 'require("llm_sidecar").setup', "advice")
end)

H.setup()
H.wait_status("🔑 1/2")

H.test("with the sidecar running and two keys everything is OK", function()
  local text = checkhealth()
  H.contains(text, "OK Neovim 0.", "report")
  H.contains(text, "OK command found: " .. H.python, "report")
  H.contains(text, "OK sidecar running: llm-sidecar", "report")
  H.contains(text, "OK anthropic: 🔑 1/2", "report")
  H.not_contains(text, "ERROR", "report")
  H.not_contains(text, "WARNING", "report")
end)

H.test("a command that does not exist is an ERROR naming the fix", function()
  local m = require("llm_sidecar")
  local cmd = m.config.cmd
  m.config.cmd = { "/nonexistent/llm-sidecar" }
  local text = checkhealth()
  m.config.cmd = cmd
  H.contains(text, "ERROR command not found or not executable: /nonexistent/llm-sidecar", "report")
  H.contains(text, "pipx install llm-sidecar", "advice")
end)

H.test("no credentials is reported with what to do", function()
  -- a second plugin state would need a second sidecar: check the provider that has none
  local m = require("llm_sidecar")
  m.config.provider = "openai"
  local text = checkhealth()
  m.config.provider = "anthropic"
  H.contains(text, "WARNING no openai credentials", "report")
  H.contains(text, ":LlmLogin", "advice")
end)

H.done()
