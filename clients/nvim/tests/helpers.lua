--- Test helpers for headless Neovim: run with `nvim --headless --clean -u NONE -l test_x.lua`.
--- The runner (test_nvim_plugin.py) provides, in the environment: SIDECAR_PYTHON (runs
--- `-m sidecar`), FAKE_URL (a running `python -m sidecar.fake`), TEST_KEY1, TEST_KEY2
--- (in ANTHROPIC_API_KEYS, known to the fake), LLM_SIDECAR_HOME (a fresh temp dir).

local H = {}

local here = debug.getinfo(1, "S").source:sub(2)
H.root = vim.fs.dirname(vim.fs.dirname(vim.fs.normalize(vim.fn.fnamemodify(here, ":p"))))
H.python = assert(os.getenv("SIDECAR_PYTHON"), "SIDECAR_PYTHON not set: run through test_nvim_plugin.py")
H.fake_url = os.getenv("FAKE_URL")
H.key1 = os.getenv("TEST_KEY1")
H.key2 = os.getenv("TEST_KEY2")
H.failed = 0
H.passed = 0
H.skipped = 0

vim.opt.rtp:prepend(H.root)

--- Everything vim.notify was given: {msg = string, level = integer}.
H.notes = {}
vim.notify = function(msg, level)
  H.notes[#H.notes + 1] = { msg = msg, level = level or vim.log.levels.INFO }
  io.stdout:write(("  [notify %s] %s\n"):format(level or "-", msg))
end

function H.fingerprint(key)
  return "sk-ant-api03-…" .. key:sub(-4)
end

function H.setup(opts)
  local cfg = vim.tbl_extend("force", { cmd = { H.python, "-m", "sidecar" }, model = "claude-sonnet-4-5" }, opts or {})
  require("llm_sidecar").setup(cfg)
end

function H.fail(msg, level)
  error(msg, (level or 1) + 1)
end

--- Wait up to `ms` for `pred`; fail naming `what` otherwise.
function H.wait(ms, pred, what)
  if not vim.wait(ms, pred, 20) then
    H.fail(("timed out after %d ms waiting for %s"):format(ms, what), 2)
  end
end

function H.eq(actual, expected, what)
  if not vim.deep_equal(actual, expected) then
    H.fail(("%s: expected %s, got %s"):format(what or "value", vim.inspect(expected), vim.inspect(actual)), 2)
  end
end

function H.truthy(v, what)
  if not v then
    H.fail((what or "value") .. ": expected true, got " .. vim.inspect(v), 2)
  end
end

function H.contains(hay, needle, what)
  if not tostring(hay):find(needle, 1, true) then
    H.fail(("%s: %s not found in:\n%s"):format(what or "text", vim.inspect(needle), hay), 2)
  end
end

function H.not_contains(hay, needle, what)
  if tostring(hay):find(needle, 1, true) then
    H.fail(("%s: %s must not appear in:\n%s"):format(what or "text", vim.inspect(needle), hay), 2)
  end
end

function H.statusline()
  return require("llm_sidecar").statusline()
end

--- Wait until the statusline shows exactly `text`. The bound is generous: on a loaded
--- machine the first start of the sidecar alone can take seconds.
function H.wait_status(text, ms)
  if not vim.wait(ms or 20000, function() return H.statusline() == text end, 20) then
    H.fail(("statusline: expected %q, still %q"):format(text, H.statusline()), 2)
  end
end

function H.buf_text(buf)
  return table.concat(vim.api.nvim_buf_get_lines(buf or 0, 0, -1, false), "\n")
end

--- Notifications since index `from` (default all), as one string.
function H.notes_text(from)
  local out = {}
  for i = from or 1, #H.notes do
    out[#out + 1] = H.notes[i].msg
  end
  return table.concat(out, "\n")
end

--- The first notification after `from` containing `needle` (waits up to `ms`).
function H.wait_note(needle, from, ms)
  local found
  local ok = vim.wait(ms or 15000, function()
    for i = from or 1, #H.notes do
      if H.notes[i].msg:find(needle, 1, true) then
        found = H.notes[i]
        return true
      end
    end
    return false
  end, 20)
  if not ok then
    H.fail(("no notification containing %q; got:\n%s"):format(needle, H.notes_text(from)), 2)
  end
  return found
end

--- A request to the fake provider's control endpoints; returns the decoded JSON.
function H.fake(method, path, body)
  assert(H.fake_url, "FAKE_URL not set")
  local code = [[
import sys, urllib.request
data = sys.stdin.buffer.read() or None
req = urllib.request.Request(sys.argv[1], data=data, method=sys.argv[2],
                             headers={"content-type": "application/json"})
with urllib.request.urlopen(req, timeout=5) as r:
    sys.stdout.write(r.read().decode())
]]
  local res = vim
    .system({ H.python, "-c", code, H.fake_url .. path, method }, {
      stdin = body and vim.json.encode(body) or "",
      text = true,
    })
    :wait(10000)
  if res.code ~= 0 then
    H.fail(("fake %s %s failed: %s"):format(method, path, res.stderr), 2)
  end
  return vim.json.decode(res.stdout)
end

--- Script the fake's answers for `key`: steps in the fake's JSON form.
function H.script(key, steps, default)
  return H.fake("POST", "/_fake/script", { key = key, steps = steps, default = default })
end

--- Back to a clean slate between tests: the fake's scripts reset, the pool at key 1.
function H.reset()
  H.fake("POST", "/_fake/reset")
  vim.cmd("LlmKeyReset")
  H.wait_status("🔑 1/2")
end

--- Run one test; failures are reported and counted, the file goes on.
function H.test(name, fn)
  local ok, err = xpcall(fn, debug.traceback)
  if ok then
    H.passed = H.passed + 1
    io.stdout:write("ok - " .. name .. "\n")
  else
    H.failed = H.failed + 1
    io.stdout:write("not ok - " .. name .. "\n" .. ("    " .. tostring(err):gsub("\n", "\n    ")) .. "\n")
  end
end

--- Report a test that cannot run yet (TAP "# SKIP"); the runner lists these.
function H.skip(name, reason)
  H.skipped = H.skipped + 1
  io.stdout:write(("ok - %s # SKIP %s\n"):format(name, reason))
end

--- Stop the sidecar, then exit with the status (cquit 0 = all passed).
function H.done()
  for _, c in ipairs(vim.lsp.get_clients({ name = "llm_sidecar" })) do
    c:stop()
    if not vim.wait(3000, function() return c:is_stopped() end, 20) then
      c:stop(true)
      vim.wait(1000, function() return c:is_stopped() end, 20)
    end
  end
  io.stdout:write(("# %d passed, %d failed\n"):format(H.passed, H.failed))
  io.stdout:flush()
  local status = (H.failed == 0 and H.passed + H.skipped > 0) and 0 or 1
  vim.cmd("cquit " .. status)
end

return H
