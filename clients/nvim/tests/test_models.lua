-- :LlmModel: a vim.ui.select picker over sidecar/models; the pick is used by :LlmAsk.
local H = dofile(vim.fs.joinpath(vim.fs.dirname(debug.getinfo(1, "S").source:sub(2)), "helpers.lua"))

H.setup()
H.wait_status("🔑 1/2")

local err = require("llm_sidecar.rpc").request_sync("sidecar/models", { provider = "anthropic" }, 10000)
if err and err.code == -32601 then
  H.skip(":LlmModel picks a model from sidecar/models", "this sidecar has no sidecar/models yet")
  H.done()
end

H.test(":LlmModel offers the sidecar's models, the current one marked, and :LlmAsk uses the pick", function()
  local offered, prompt, chosen
  vim.ui.select = function(items, opts, on_choice)
    offered, prompt = {}, opts.prompt
    for _, item in ipairs(items) do
      offered[#offered + 1] = opts.format_item(item)
    end
    for _, item in ipairs(items) do
      if item.id ~= "claude-sonnet-4-5" then
        chosen = item.id
        return on_choice(item, 1)
      end
    end
  end
  local from = #H.notes + 1
  vim.cmd("LlmModel")
  H.wait(10000, function() return offered ~= nil end, "vim.ui.select")
  H.contains(prompt, "Model for anthropic (now claude-sonnet-4-5)", "prompt")
  H.truthy(#offered >= 2, "models offered: " .. vim.inspect(offered))
  H.truthy(chosen, "another model to pick")
  H.contains(H.wait_note(chosen .. " answers from now on", from).msg, "until setup()", "message")
  H.eq(require("llm_sidecar").config.model, chosen, "config.model")
  vim.cmd("LlmAsk which model?")
  local buf = vim.api.nvim_get_current_buf()
  H.wait(15000, function() return require("llm_sidecar.ask").by_buf[buf].done end, "the answer")
  local log = H.fake("GET", "/_fake/log")
  H.eq(log.requests[#log.requests].model, chosen, "the model the fake was asked for")
end)

H.test("dismissing the picker keeps the model", function()
  local before = require("llm_sidecar").config.model
  vim.ui.select = function(_, _, on_choice) on_choice(nil, nil) end
  vim.cmd("LlmModel")
  vim.wait(500)
  H.eq(require("llm_sidecar").config.model, before, "config.model")
end)

H.done()
