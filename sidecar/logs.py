"""Logging that never writes a secret.

Every record passes a filter that replaces known secrets, and anything that
looks like a provider key or token, by its fingerprint. Logs go to stderr
(editors show it in their output panel) or to ``--log-file``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO

from sidecar.fingerprints import fingerprint, redact

__all__ = [
    "ExpectedErrorFilter",
    "RedactingFilter",
    "open_private_log",
    "redact_text",
    "setup_logging",
]

# Shapes of provider secrets: sk-…, sk-ant-…, gsk_…, csk-…, xai-…, Google's AIza…, JWTs
# (OAuth access tokens), and bearer-looking blobs.
_SECRET_SHAPES = re.compile(
    r"\b(?:sk|gsk|csk|xai|pk|rk)[-_][A-Za-z0-9][A-Za-z0-9_\-]{14,}"
    r"|\bAIza[A-Za-z0-9_\-]{30,}"
    r"|\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"
    r"|(?<=Bearer )[A-Za-z0-9._\-~+/]{16,}=*"
)

# A quoted value under a name that holds a secret, as a message shows up in a log line:
# JSON (``"key": "…"``), a Python repr (``'key': '…'``) or an attrs repr (``key='…'``).
# This catches a key of any shape (a Mistral key has no prefix) before the pool knows it,
# e.g. in a malformed ``sidecar/keyAdd`` that pygls logs as it was received.
_SECRET_FIELDS = re.compile(
    r"""(?P<name>(?<![\w-])["']?(?:key|secret|token|password|input|api[-_]?key|apiKey|x-api-key"""
    r"""|access[-_]?token|accessToken|refresh[-_]?token|refreshToken|id[-_]?token|idToken"""
    r"""|authorization|code[-_]?verifier|codeVerifier)["']?\s*[:=]\s*)"""
    r"""(?P<quote>\\?["'])(?P<value>(?:\\.|(?!(?P=quote)).)*?)(?P=quote)""",
    re.IGNORECASE,
)


def _mask_field(match: re.Match[str]) -> str:
    value = match.group("value")
    masked = fingerprint(value) if value else value
    return f"{match.group('name')}{match.group('quote')}{masked}{match.group('quote')}"


def redact_text(text: str, known: Iterable[str] = ()) -> str:
    """``text`` with every secret replaced by its fingerprint.

    Known secrets (the pool's) go first, then values under secret-holding field names,
    then anything shaped like a provider key or token.
    """
    text = redact(text, tuple(known))
    text = _SECRET_FIELDS.sub(_mask_field, text)
    return _SECRET_SHAPES.sub(lambda m: fingerprint(m.group(0)), text)


class RedactingFilter(logging.Filter):
    """Rewrites each record with its secrets replaced by fingerprints.

    ``known`` is asked for the pool's secrets on every record; they are remembered, so
    that a key removed from the pool (or evicted after a 401 that echoed it) stays
    redacted for the life of the process.
    """

    def __init__(self, known: Callable[[], Iterable[str]] = tuple) -> None:
        super().__init__()
        self.known = known
        self._seen: set[str] = set()

    def secrets(self) -> list[str]:
        with contextlib.suppress(Exception):  # a broken store must not break logging
            self._seen.update(s for s in self.known() if isinstance(s, str) and len(s) >= 8)
        # Longest first: a secret that contains another is replaced whole.
        return sorted(self._seen, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose args do not fit its format
            message = f"{record.msg!r} {record.args!r}"
        known = self.secrets()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = redact_text(message, known)
        record.args = None
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text, known)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info, known)
        return True


class ExpectedErrorFilter(logging.Filter):
    """pygls logs every error a handler returns with a traceback at ERROR level.

    For the errors we raise on purpose (invalid params, all keys rate limited,
    upstream errors), that is noise in the editor's log: keep one line at INFO.
    Internal errors (-32603) keep their traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        code = getattr(exc, "code", None)
        if record.name.startswith("pygls") and isinstance(code, int) and code != -32603:
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg, record.args = f"request failed ({code}): {exc}", None
            record.exc_info = record.exc_text = None
            return logging.getLogger().isEnabledFor(logging.INFO)
        return True


def setup_logging(
    level: str = "WARNING",
    log_file: Path | None = None,
    known_secrets: Callable[[], Iterable[str]] = tuple,
) -> None:
    handler: logging.Handler
    if log_file is not None:
        handler = logging.StreamHandler(open_private_log(log_file))
    else:
        handler = logging.StreamHandler()
    handler.addFilter(ExpectedErrorFilter())
    handler.addFilter(RedactingFilter(known_secrets))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def open_private_log(path: Path) -> TextIO:
    """``path`` opened for appending, readable by its owner only whatever the umask.

    The file is created 0600 in one step (never briefly world-readable) and an existing
    one is made 0600 before anything is written to it. Missing parent directories are
    created 0700. A symlink at ``path`` is refused: a log must not be redirected into
    someone else's file.
    """
    path = path.expanduser()
    # Each missing directory 0700: Path.mkdir(parents=True) would create the parents with
    # the umask's permissions (0777 under umask 0), and the log's directory may be the
    # sidecar's home itself, which the store then finds already there.
    missing = []
    parent = path.parent
    while not parent.is_dir():
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o700)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        return open(fd, "a", encoding="utf-8", buffering=1)
    except BaseException:
        os.close(fd)
        raise
