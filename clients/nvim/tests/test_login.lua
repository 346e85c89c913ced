-- :LlmLogin / :LlmLogout against the documented contract (docs/protocol.md, sidecar/login),
-- and for real against the fake's OAuth server (the runner points the sidecar's Anthropic
-- login at it): the test plays the browser that vim.ui.open would start.
local H = dofile(vim.fs.joinpath(vim.fs.dirname(debug.getinfo(1, "S").source:sub(2)), "helpers.lua"))

H.setup()
H.wait_status("🔑 1/2")

local opened = {}
local browser = false -- when true, a URL opened is fetched as a browser would, redirects followed
local pages = {} -- what the "browser" was shown, in order
local authorize = H.fake_url .. "/oauth/authorize?"

--- The fake "approves" at once: its 302 goes to the sidecar's loopback callback (auto) or
--- to its own page showing code#state (paste). No proxy: it is all on this machine.
local function play_browser(url)
  local code = [[
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with opener.open(sys.argv[1], timeout=60) as r:
    sys.stdout.write(r.geturl() + "\n" + r.read().decode())
]]
  vim.system({ H.python, "-c", code, url }, { text = true }, function(out)
    pages[#pages + 1] = out
  end)
end

vim.ui.open = function(uri)
  opened[#opened + 1] = uri
  if browser then
    play_browser(uri)
  end
  return { wait = function() return { code = 0 } end }, nil
end

H.test("window/showDocument from the sidecar opens the URL with vim.ui.open", function()
  local client = require("llm_sidecar").client()
  local handler = client.handlers["window/showDocument"]
  H.truthy(handler, "a per-client window/showDocument handler")
  local result = handler(nil, { uri = "https://example.invalid/oauth/authorize?x=1", external = true },
    { method = "window/showDocument", client_id = client.id })
  H.eq(result, { success = true }, "result")
  H.eq(opened[#opened], "https://example.invalid/oauth/authorize?x=1", "opened")
  H.eq(handler(nil, { uri = "file:///etc/passwd", external = true }, { client_id = client.id }), { success = false },
    "a non-web URI is not opened")
  H.eq(#opened, 1, "vim.ui.open calls")
end)

-- Is sidecar/login there yet?
local err = require("llm_sidecar.rpc").request_sync("sidecar/loginCancel", { loginId = "none" }, 5000)
local has_login = not (err and err.code == -32601)

if not has_login then
  H.skip(":LlmLogin paste prompts for code#state; an empty answer cancels the login", "sidecar/login not implemented yet")
  H.skip(":LlmLogin (auto) opens the authorization URL through window/showDocument", "sidecar/login not implemented yet")
  H.test(":LlmLogin against a sidecar without sidecar/login names the fix", function()
    local from = #H.notes + 1
    vim.cmd("LlmLogin")
    local note = H.wait_note("Starting the login to anthropic failed", from)
    H.eq(note.level, vim.log.levels.ERROR, "level")
    H.contains(note.msg, "update it", "advice")
  end)
else
  H.test(":LlmLogin paste prompts for code#state; an empty answer cancels the login", function()
    local prompts = {}
    vim.ui.input = function(opts, on_confirm)
      prompts[#prompts + 1] = opts.prompt
      on_confirm("")
    end
    local from = #H.notes + 1
    vim.cmd("LlmLogin paste")
    H.wait_note("login cancelled", from, 10000)
    H.eq(#prompts, 1, "prompts")
    H.contains(prompts[1], "code#state", "prompt")
    H.wait(10000, function() return #opened >= 2 end, "the authorization URL opened (showDocument)")
    H.eq(opened[#opened]:sub(1, #authorize), authorize, "the fake's authorization URL")
    vim.wait(300) -- a second open would have come by now
    H.eq(#opened, 2, "the page opened once, not twice")
    H.eq(H.statusline(), "🔑 1/2", "statusline")
  end)

  H.test(":LlmLogin (auto) opens the authorization URL through window/showDocument", function()
    local before = #opened
    local from = #H.notes + 1
    vim.cmd("LlmLogin")
    H.wait(10000, function() return #opened > before end, "vim.ui.open with the authorization URL")
    H.eq(opened[#opened]:sub(1, #authorize), authorize, "the fake's authorization URL")
    H.wait_note("sign in in your browser", from)
  end)

  H.test("sidecar/didEndLogin ends the pending login and shows its outcome", function()
    local account = require("llm_sidecar.account")
    local pending = account.logins.anthropic
    H.truthy(pending and account.login_pending("anthropic"), "the :LlmLogin above is pending")
    local from = #H.notes + 1
    -- Cancelled from elsewhere (another window, the CLI would be another process):
    -- only the sidecar's notification can tell the plugin.
    local err = require("llm_sidecar.rpc").request_sync("sidecar/loginCancel", { loginId = pending.loginId }, 5000)
    H.eq(err, nil, "loginCancel error")
    local note = H.wait_note("login to anthropic cancelled", from)
    H.eq(note.level, vim.log.levels.INFO, "level")
    H.eq(account.login_pending("anthropic"), false, "pending after didEndLogin")
    H.eq(H.statusline(), "🔑 1/2", "the status line shows the status, not the login")
  end)

  H.test("a status with a message while a login is pending is only a status", function()
    local account = require("llm_sidecar.account")
    account.logins.anthropic = { loginId = "l-test", url = "https://example.invalid/", mode = "auto" }
    local from = #H.notes + 1
    require("llm_sidecar.status").update({
      provider = "anthropic", kind = "Normal", text = "🔑 1/2", index = 1, size = 2, rotated = false,
      message = "a note that is not about the login",
    })
    vim.wait(200)
    H.eq(H.notes_text(from), "", "notes")
    H.eq(account.login_pending("anthropic"), true, "still pending: only didEndLogin ends it")
    account.login_ended({ loginId = "l-other", provider = "anthropic", profile = "default", outcome = "failed", message = "x" })
    H.eq(account.login_pending("anthropic"), true, "another login's end leaves it pending")
    account.login_ended({ loginId = "l-test", provider = "anthropic", profile = "default", outcome = "failed", message = "the login to anthropic timed out" })
    H.eq(account.login_pending("anthropic"), false, "ended")
    H.eq(H.wait_note("timed out", from).level, vim.log.levels.ERROR, "a failure is an error")
  end)

  --- The login as the user sees it: counted in the statusline, listed by :LlmStatus.
  local function status_text()
    vim.cmd("LlmStatus")
    H.wait(10000, function() return vim.api.nvim_win_get_config(0).relative ~= "" end, "the status float")
    local text = H.buf_text(0)
    vim.cmd("close")
    return text
  end

  H.test(":LlmLogin: the browser signs in at the fake's OAuth server; the login is counted and listed", function()
    browser = true
    local seen = #pages
    vim.cmd("LlmLogin") -- supersedes the login the test before left waiting
    H.wait(30000, function() return #pages > seen end, "the browser to come back from the sign-in")
    local page = pages[#pages]
    H.eq(page.code, 0, "the browser's fetch: " .. tostring(page.stderr))
    H.truthy(page.stdout:match("^http://localhost:%d+/callback%?"), "it ended at the sidecar's callback: " .. page.stdout)
    H.wait(30000, function() return H.statusline():match("^🔑 %d/3$") ~= nil end, "🔑 n/3 in the statusline (was " .. H.statusline() .. ")")
    local text = status_text()
    H.truthy(text:match("sk%-ant%-oat01%-…%w%w%w%w  oauth  profile  ok"), "the login in :LlmStatus:\n" .. text)
    H.eq(require("llm_sidecar.account").login_pending("anthropic"), false, "no login pending")
  end)

  H.test(":LlmLogout removes the login: back to 🔑 1/2", function()
    local from = #H.notes + 1
    vim.cmd("LlmLogout")
    H.wait_note("logged out of anthropic", from)
    H.wait_status("🔑 1/2", 10000)
    H.not_contains(status_text(), "sk-ant-oat01-", ":LlmStatus")
  end)

  H.test(":LlmLogin paste: the code#state the fake's page shows, pasted at the prompt, logs in", function()
    browser = true
    local seen = #pages
    local confirm
    vim.ui.input = function(_, on_confirm) confirm = on_confirm end
    vim.cmd("LlmLogin paste")
    H.wait(30000, function() return #pages > seen and confirm ~= nil end, "the sign-in page and the prompt")
    local shown = pages[#pages].stdout:match("<code id='code'>([^<]+)</code>")
    H.truthy(shown and shown:find("#", 1, true), "the page shows code#state: " .. pages[#pages].stdout)
    local from = #H.notes + 1
    confirm(shown)
    H.wait_note("logged in to anthropic", from, 30000)
    H.wait(10000, function() return H.statusline():match("^🔑 %d/3$") ~= nil end, "🔑 n/3 after the paste")
    H.truthy(status_text():find("oauth  profile  ok", 1, true), "the login listed")
    vim.cmd("LlmLogout")
    H.wait_status("🔑 1/2", 10000)
  end)
end

H.done()
