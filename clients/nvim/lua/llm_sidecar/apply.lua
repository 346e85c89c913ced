--- Apply: put the code block under the cursor of an answer or chat buffer into the
--- buffer the question came from, replacing the attached lines when there were some.

local M = {}

local api = vim.api

---@class llm_sidecar.Target
---@field buf integer  the source buffer
---@field win integer  the window it was in (for the insertion point)
---@field ctx? llm_sidecar.Context  the attached lines, replaced by an apply

---@type table<integer, llm_sidecar.Target> answer/chat buffer -> where its code goes
M.targets = {}

--- Remember where code from answer buffer `buf` goes, and map the apply key there.
---@param buf integer
---@param target llm_sidecar.Target
function M.attach(buf, target)
  M.targets[buf] = target
  local lhs = require("llm_sidecar").config.keymaps.apply
  if lhs then
    vim.keymap.set("n", lhs, M.apply, { buffer = buf, nowait = true, desc = "llm-sidecar: apply this code block" })
  end
  api.nvim_create_autocmd("BufWipeout", {
    buffer = buf,
    once = true,
    callback = function() M.targets[buf] = nil end,
  })
end

--- The fenced code block around line `row` (1-based) of `lines`, or nil.
---@param lines string[]
---@param row integer
---@return string[]? code, integer? first, integer? last  (rows of the fences)
function M.block_at(lines, row)
  -- Walk the fences from the top, so that an opening and a closing fence are told apart.
  local open, fence
  for i, l in ipairs(lines) do
    if not open then
      local f = l:match("^%s*(```+)")
      if f then
        open, fence = i, f
      end
    elseif l:match("^%s*" .. fence .. "%s*$") then
      if row >= open and row <= i then
        return vim.list_slice(lines, open + 1, i - 1), open, i
      end
      open, fence = nil, nil
    end
    if i > row and not open then
      break
    end
  end
  return nil
end

--- :LlmApply / the apply key: the block under the cursor goes into the source buffer,
--- in place of the attached lines, or else below the cursor there. One undo step.
function M.apply()
  local buf = api.nvim_get_current_buf()
  local rpc = require("llm_sidecar.rpc")
  local target = M.targets[buf]
  if not target or not api.nvim_buf_is_valid(target.buf) then
    return rpc.notify("this buffer has no source buffer to apply code to (ask from a file's buffer).", vim.log.levels.WARN)
  end
  local row = api.nvim_win_get_cursor(0)[1]
  local code = M.block_at(api.nvim_buf_get_lines(buf, 0, -1, false), row)
  if not code then
    return rpc.notify("put the cursor inside a ``` code block to apply it.", vim.log.levels.WARN)
  end
  if not vim.bo[target.buf].modifiable then
    return rpc.notify("the source buffer is not modifiable.", vim.log.levels.WARN)
  end
  local ctx = target.ctx
  local first, last, what
  if ctx then
    local context = require("llm_sidecar.context")
    local l1, l2 = context.lines_now(ctx)
    if not l1 then
      return rpc.notify("the attached lines are gone from " .. ctx.name .. ": nothing replaced.", vim.log.levels.WARN)
    end
    first, last = l1 - 1, l2
    what = ("replaced lines %d-%d of %s"):format(l1, l2, ctx.name)
    api.nvim_buf_set_lines(target.buf, first, last, false, code)
    -- A second apply replaces what the first put there.
    context.remark(ctx, l1, l1 + #code - 1)
    return rpc.notify(what .. " (u in that buffer undoes it).", vim.log.levels.INFO)
  else
    local at = api.nvim_win_is_valid(target.win) and api.nvim_win_get_buf(target.win) == target.buf
        and api.nvim_win_get_cursor(target.win)[1]
      or api.nvim_buf_line_count(target.buf)
    first, last = at, at
    what = ("inserted %d lines below line %d"):format(#code, at)
  end
  -- One nvim_buf_set_lines call is one change: a single `u` in the source undoes it.
  api.nvim_buf_set_lines(target.buf, first, last, false, code)
  rpc.notify(what .. " (u in that buffer undoes it).", vim.log.levels.INFO)
end

return M
