"""The ``llm-sidecar`` command: one entry point, :func:`main`.

``llm-sidecar`` (or ``serve``) runs the stdio server an editor spawns; the other
subcommands manage the same store from a terminal. The parser
(:mod:`sidecar.cli.parser`), the commands (:mod:`sidecar.cli.commands`), the login loop
(:mod:`sidecar.cli.login`), ``ask`` and ``demo`` are modules of their own, imported only
when a subcommand is given, so that ``serve`` starts fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

__all__ = ["main"]

Command = Callable[["argparse.Namespace"], int]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        # Editors run the bare command: serve without building the parser.
        from sidecar.rpc.server import serve

        return serve()
    if argv[0].startswith("--log"):
        argv = ["serve", *argv]
    from sidecar.cli.commands import fail
    from sidecar.cli.parser import build_parser

    args = build_parser().parse_args(argv)
    if (
        args.command == "key"
        and args.action == "remove"
        and ((args.fingerprint is None) == (args.index is None))
    ):
        return fail("give a fingerprint (or id), or --index, of the key to remove", 2)
    try:
        func: Command = args.func
        return func(args)
    except KeyboardInterrupt:
        return 130
    except (OSError, ValueError) as exc:
        return fail(str(exc))
    except Exception as exc:
        from sidecar.errors import SidecarError

        if isinstance(exc, SidecarError):
            return fail(exc.message)
        raise
