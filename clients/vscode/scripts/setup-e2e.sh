#!/usr/bin/env bash
# Installs what the VS Code end-to-end test needs: Debian's chromium (and an
# emoji font, for the 🔑 in screenshots), the
# packages code-server's native modules build against, and code-server itself
# (npm, pinned to 4.100.3: the newest that runs on Node 20).
# Idempotent: when everything is in place it only checks, in about a second.
#
# code-server goes to $LLM_SIDECAR_E2E_HOME (default ~/.cache/llm-sidecar-e2e),
# outside the checkout, so that CI's fresh clones reuse it.
set -euo pipefail

CODE_SERVER_VERSION=4.100.3
E2E_HOME="${LLM_SIDECAR_E2E_HOME:-$HOME/.cache/llm-sidecar-e2e}"
CS_DIR="$E2E_HOME/code-server-$CODE_SERVER_VERSION"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# 1. Debian packages ------------------------------------------------------------
want=(chromium fonts-noto-color-emoji ripgrep pkg-config libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup-e2e: apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 2. code-server ----------------------------------------------------------------
bin="$CS_DIR/node_modules/.bin/code-server"
if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "^$CODE_SERVER_VERSION "; then
  :
else
  echo "setup-e2e: npm install code-server@$CODE_SERVER_VERSION into $CS_DIR (about a minute)"
  # @vscode/ripgrep's postinstall downloads rg from GitHub, which is not
  # reachable here: seed its download cache with Debian's rg instead.
  tmp="${TMPDIR:-/tmp}"
  cache="$tmp/vscode-ripgrep-cache-1.15.11"
  archive="$cache/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz"
  if [ ! -s "$archive" ]; then
    mkdir -p "$cache"
    stage="$(mktemp -d)"
    cp "$(command -v rg)" "$stage/rg"
    tar -czf "$archive" -C "$stage" rg
    rm -rf "$stage"
  fi
  rm -rf "$CS_DIR"
  mkdir -p "$CS_DIR"
  cd "$CS_DIR"
  echo '{"name":"llm-sidecar-e2e-code-server","private":true}' > package.json
  npm_config_unsafe_perm=true npm_config_yes=true \
    npm install --no-audit --no-fund --foreground-scripts "code-server@$CODE_SERVER_VERSION" > install.log 2>&1 \
    || { tail -40 install.log; echo "setup-e2e: code-server install failed (log: $CS_DIR/install.log)"; exit 1; }
  "$bin" --version | head -1
fi

echo "setup-e2e: ok: code-server $("$bin" --version | head -1 | cut -d' ' -f1) at $bin; $(/usr/bin/chromium --version 2>/dev/null)"
echo "CODE_SERVER=$bin"
