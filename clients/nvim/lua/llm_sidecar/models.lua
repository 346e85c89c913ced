--- :LlmModel: choose the model of :LlmAsk and :LlmChat from the sidecar's list
--- (`sidecar/models`), with vim.ui.select.

local M = {}

local rpc = require("llm_sidecar.rpc")

--- The models of a `sidecar/models` result, whatever the list is called, as
--- {id, label, provider}.
---@return table[]
function M.items(result, provider)
  local list = type(result) == "table" and (result.models or result) or {}
  local items = {}
  for _, m in ipairs(type(list) == "table" and list or {}) do
    local id = type(m) == "string" and m or (type(m) == "table" and (m.id or m.model or m.name)) or nil
    if type(id) == "string" then
      local name = type(m) == "table" and (m.displayName or m.display_name or m.label) or nil
      items[#items + 1] = {
        id = id,
        label = (name and name ~= id) and ("%s  (%s)"):format(id, name) or id,
        provider = type(m) == "table" and m.provider or provider,
      }
    end
  end
  return items
end

--- :LlmModel [provider]: pick a model; it is used until Neovim exits or setup() runs again.
---@param provider? string
function M.pick(provider)
  local cfg = require("llm_sidecar").config
  provider = provider or cfg.provider
  rpc.request("sidecar/models", { provider = provider }, function(err, result)
    if err then
      return rpc.notify_error("Listing the " .. provider .. " models", err, {
        [-32601] = "This llm-sidecar cannot list models yet: update it, or set `model` in setup().",
      })
    end
    local items = M.items(result, provider)
    -- The sidecar fell back to the models it knows: say why the list may be short.
    for _, e in ipairs(type(result) == "table" and result.errors or {}) do
      rpc.notify(("the %s model list could not be fetched (%s): showing the models the sidecar knows."):format(
        e.provider or provider, e.message or "?"), vim.log.levels.WARN)
    end
    if #items == 0 then
      return rpc.notify(("the sidecar knows no %s models: set `model` in setup()."):format(provider), vim.log.levels.WARN)
    end
    vim.ui.select(items, {
      prompt = ("Model for %s (now %s)"):format(provider, cfg.model),
      format_item = function(item)
        return (item.id == cfg.model and "● " or "  ") .. item.label
      end,
      kind = "llm_sidecar.model",
    }, function(choice)
      if not choice then
        return
      end
      cfg.model = choice.id
      if choice.provider and choice.provider ~= cfg.provider then
        cfg.provider = choice.provider
      end
      rpc.notify(("%s answers from now on (until setup() runs again)."):format(choice.id), vim.log.levels.INFO)
    end)
  end)
end

return M
