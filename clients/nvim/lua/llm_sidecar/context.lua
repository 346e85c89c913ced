--- Lines of a source buffer attached to a question: what the model gets (a fenced
--- block naming the file) and the one header line the user sees instead.

local M = {}

M.ns = vim.api.nvim_create_namespace("llm_sidecar.context")

---@class llm_sidecar.Context
---@field buf integer     the source buffer
---@field line1 integer   1-based, inclusive
---@field line2 integer
---@field whole boolean   the whole buffer (`%`)
---@field name string     the file, relative to the working directory
---@field filetype string
---@field text string     what the model gets
---@field mark integer    extmark over the lines: edits above them move it along

--- Fence that no line of `lines` contains, so a code block inside cannot end it.
local function fence_for(lines)
  local fence = "```"
  for _, l in ipairs(lines) do
    while l:find(fence, 1, true) do
      fence = fence .. "`"
    end
  end
  return fence
end

--- The context of `range` ({line1, line2, whole?}) in buffer `buf` (default current).
---@return llm_sidecar.Context?
function M.capture(range, buf)
  if not range then
    return nil
  end
  buf = buf or vim.api.nvim_get_current_buf()
  local lines = vim.api.nvim_buf_get_lines(buf, range[1] - 1, range[2], false)
  local name = vim.api.nvim_buf_get_name(buf)
  name = name ~= "" and vim.fn.fnamemodify(name, ":~:.") or ("[buffer %d]"):format(buf)
  local ft = vim.bo[buf].filetype
  local fence = fence_for(lines)
  local where = range.whole and name or ("%s, lines %d-%d"):format(name, range[1], range[2])
  local mark = vim.api.nvim_buf_set_extmark(buf, M.ns, range[1] - 1, 0, { end_row = range[2], end_col = 0 })
  return {
    mark = mark,
    buf = buf,
    line1 = range[1],
    line2 = range[2],
    whole = range.whole and true or false,
    name = name,
    filetype = ft,
    text = ("From %s:\n%s%s\n%s\n%s"):format(where, fence, ft, table.concat(lines, "\n"), fence),
  }
end

--- Where the attached lines are now (1-based, inclusive), after edits of the buffer;
--- nil when they were deleted.
---@param ctx llm_sidecar.Context
---@return integer?, integer?
function M.lines_now(ctx)
  local ok, m = pcall(vim.api.nvim_buf_get_extmark_by_id, ctx.buf, M.ns, ctx.mark, { details = true })
  if not ok or not m or not m[1] then
    return nil
  end
  local first, last = m[1] + 1, (m[3] and m[3].end_row or m[1] + 1)
  if last < first then
    return nil
  end
  return first, last
end

--- Move the mark over `line1`..`line2` (after an apply replaced the lines).
function M.remark(ctx, line1, line2)
  ctx.line1, ctx.line2 = line1, line2
  ctx.mark = vim.api.nvim_buf_set_extmark(ctx.buf, M.ns, line1 - 1, 0, { id = ctx.mark, end_row = line2, end_col = 0 })
end

--- The header line shown above the question, e.g. `📎 lua/x.lua:3-9 (7 lines)`.
---@param ctx llm_sidecar.Context
function M.header(ctx)
  local n = ctx.line2 - ctx.line1 + 1
  local lines = ("%d line%s"):format(n, n == 1 and "" or "s")
  if ctx.whole then
    return ("📎 %s (whole buffer, %s)"):format(ctx.name, lines)
  end
  return ("📎 %s:%d-%d (%s)"):format(ctx.name, ctx.line1, ctx.line2, lines)
end

return M
