"""Logging that never writes a secret.

Every record passes a filter that replaces known secrets, and anything that
looks like a provider key or token, by its fingerprint. Logs go to stderr
(editors show it in their output panel) or to ``--log-file``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from sidecar.fingerprints import fingerprint

__all__ = ["ExpectedErrorFilter", "RedactingFilter", "redact_text", "setup_logging"]

# Shapes of provider secrets: sk-…, sk-ant-…, gsk_…, xai-…, and bearer-looking blobs.
_SECRET_SHAPES = re.compile(
    r"\b(?:sk|gsk|xai|pk|rk)[-_][A-Za-z0-9][A-Za-z0-9_\-]{14,}"
    r"|(?<=Bearer )[A-Za-z0-9._\-]{16,}"
)


def redact_text(text: str, known: Iterable[str] = ()) -> str:
    for secret in known:
        if len(secret) >= 8 and secret in text:
            text = text.replace(secret, fingerprint(secret))
    return _SECRET_SHAPES.sub(lambda m: fingerprint(m.group(0)), text)


class RedactingFilter(logging.Filter):
    def __init__(self, known: Callable[[], Iterable[str]] = tuple) -> None:
        super().__init__()
        self.known = known

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = redact_text(message, self.known())
        record.args = None
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text, self.known())
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
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file, encoding="utf-8")
        log_file.chmod(0o600)
    else:
        handler = logging.StreamHandler()
    handler.addFilter(ExpectedErrorFilter())
    handler.addFilter(RedactingFilter(known_secrets))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
