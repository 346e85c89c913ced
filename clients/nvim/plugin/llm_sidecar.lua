-- Commands and <Plug> mappings exist from start-up; nothing else runs until one is
-- used or setup() is called (the sidecar starts then).
if vim.g.loaded_llm_sidecar or vim.fn.has("nvim-0.11") == 0 then
  return
end
vim.g.loaded_llm_sidecar = true
require("llm_sidecar.commands").define()
