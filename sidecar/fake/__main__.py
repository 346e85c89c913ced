"""``python -m sidecar.fake``: the fake as a process, for Node and Neovim tests.

Prints one JSON line ``{"url": "http://127.0.0.1:PORT"}`` once it is listening, then
serves until SIGTERM or SIGINT. Scripts come from ``--script FILE.json`` (one script
object or a list of them, as ``POST /_fake/script`` takes) and ``--key K`` (a key with
the default reply); ``--rate-limit SPEC`` gives every key real rate limits and
``--overload SPEC`` 529 bursts (see :mod:`sidecar.fake._ratelimit`); ``POST /_fake/reset``
returns to exactly these. ``--host`` picks another loopback address (``127.0.0.2``): a
browser in code-server opens ``127.0.0.1``/``localhost`` URLs through its own proxy, so
a test that plays the browser against the fake's OAuth server needs one it leaves alone.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import signal
import sys

from sidecar.fake._ratelimit import (
    Overload,
    RateLimits,
    parse_limits,
    parse_overload,
    parse_spec,
)
from sidecar.fake._script import Script, parse_script
from sidecar.fake._server import FakeServer
from sidecar.fake._state import State


def _load(path: str) -> list[Script]:
    with open(path, encoding="utf-8") as f:
        value = json.load(f)
    return [parse_script(v) for v in (value if isinstance(value, list) else [value])]


async def _serve(
    host: str,
    port: int,
    scripts: list[Script],
    limits: RateLimits | None = None,
    overload: Overload | None = None,
) -> None:
    by_key: dict[str | None, RateLimits] = {None: limits} if limits is not None else {}
    server = FakeServer(State(scripts, limits=by_key, overload=overload))
    url = await server.start(host=host, port=port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sys.stdout.write(json.dumps({"url": url}) + "\n")
    sys.stdout.flush()
    await stop.wait()
    await server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sidecar.fake", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0 (default): a free port")
    parser.add_argument(
        "--host", default="127.0.0.1", help="a loopback address to listen on (127.0.0.1)"
    )
    parser.add_argument("--script", action="append", default=[], metavar="FILE.json")
    parser.add_argument("--key", action="append", default=[], help="a key with the default reply")
    parser.add_argument(
        "--rate-limit",
        metavar="SPEC",
        help="every key's limits, e.g. requests=50,input_tokens=30000,output_tokens=8000,"
        "period=6,refill=continuous (or window); see sidecar.fake._ratelimit",
    )
    parser.add_argument(
        "--overload", metavar="SPEC", help="529 bursts whatever the key: every=10,length=1"
    )
    args = parser.parse_args(argv)
    try:
        # The fake answers any key: only this machine may reach it.
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        parser.error(f"--host {args.host}: not a loopback address (e.g. 127.0.0.2)")
    try:
        scripts = [Script(k) for k in args.key]
        for path in args.script:
            scripts += _load(path)
        limits = parse_limits(parse_spec(args.rate_limit)) if args.rate_limit else None
        overload = parse_overload(parse_spec(args.overload)) if args.overload else None
    except (OSError, ValueError, TypeError) as exc:
        parser.error(str(exc))
    asyncio.run(_serve(args.host, args.port, scripts, limits, overload))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
