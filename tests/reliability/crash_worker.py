"""A store writer to be killed with SIGKILL at a random moment (tests/reliability).

``python crash_worker.py HOME LOG WORKER SEED`` loops forever over add / remove /
cooldown through :class:`KeyPool`, on keys of its own (``…-crash-w<WORKER>-…``).
Around each store call it appends to LOG, fsynced:

    begin <op> <key>     before the call
    done <op> <key>      after the call returned

so the checker knows which writes completed (must be on disk) and which one was in
flight when the kill came (may or may not be). It prints ``ready`` once set up.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

from sidecar.rotation.classify import Failure, FailureClass
from sidecar.rotation.keypool import KeyPool
from sidecar.store import Store

COOLDOWN = 3600.0  # far beyond the test: a recorded cooldown must still be there


def main() -> None:
    home, log_path, worker, seed = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    keypool = KeyPool(Store(home), env={})
    rng = random.Random(seed)
    prefix = f"sk-ant-api03-crash-w{worker}-"
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def note(line: str) -> None:
        os.write(log, f"{line}\n".encode())
        os.fsync(log)

    print("ready", flush=True)
    n = 0
    while True:
        mine = [c for c in keypool.credentials("anthropic") if c.secret.startswith(prefix)]
        roll = rng.random()
        grow = 0.6 if len(mine) < 12 else 0.25
        if roll < grow or not mine:
            key = f"{prefix}{seed}-{n:06d}-{rng.getrandbits(32):08x}"
            note(f"begin add {key}")
            keypool.add_key("anthropic", key)
            note(f"done add {key}")
        elif roll < grow + (1 - grow) / 2:
            cred = rng.choice(mine)
            note(f"begin remove {cred.secret}")
            keypool.remove("anthropic", fingerprint=cred.id, index=None)
            note(f"done remove {cred.secret}")
        else:
            cred = rng.choice(mine)
            until = time.time() + COOLDOWN
            failure = Failure(FailureClass.RATE_LIMIT, 429, None, "crash test", until, False)
            note(f"begin cooldown {cred.secret}")
            keypool.report_failure(cred, failure)
            note(f"done cooldown {cred.secret}")
        n += 1


if __name__ == "__main__":
    main()
