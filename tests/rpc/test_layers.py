"""The import rule: nothing below the faces loads pygls, lsprotocol or the wire types.

Each module is imported alone in a fresh interpreter, and what it pulled in is read
from ``sys.modules``: the engine, the pool, the providers and the logins must run
under any face (the CLI, the HTTP gateway), so they may never need the JSON-RPC one.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

BELOW_THE_FACES = [
    "sidecar.engine",
    "sidecar.events",
    "sidecar.rotation.failover",
    "sidecar.rotation.attempts",
    "sidecar.rotation.keypool",
    "sidecar.rotation",
    "sidecar.rotation.classify",
    "sidecar.models",
    "sidecar.oauth",
    "sidecar.providers",
    "sidecar.store",
    "sidecar.gateway",
]
FORBIDDEN = ("pygls", "lsprotocol", "sidecar.rpc")


@pytest.mark.parametrize("module", BELOW_THE_FACES)
def test_a_module_below_the_faces_never_loads_the_wire(module: str) -> None:
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = json.loads(out.stdout)
    bad = [m for m in loaded if m.split(".")[0] in FORBIDDEN or m.startswith("sidecar.rpc")]
    assert bad == [], f"{module} loads {bad}"
