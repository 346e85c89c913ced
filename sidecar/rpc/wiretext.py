"""Strings that JSON can carry but nothing after it can: lone surrogates.

``"\\ud800"`` is valid JSON and becomes a Python ``str`` that cannot be encoded
as UTF-8, so it fails much later, deep in the store, an HTTP body or a header,
as an internal error. Every message's params are checked once, as they arrive,
so that the client gets -32602 naming the field instead.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["unencodable_field"]

# Object keys are named in the path only when they look like field names: a key
# pasted as an object key must not come back in the error.
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")


def _encodable(text: str) -> bool:
    if text.isascii():  # the common case, and a fast one even for megabytes
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _all_encodable(params: Any) -> bool:
    """The fast pass, without paths: params can hold hundreds of thousands of items."""
    stack = [params]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if not _encodable(value):
                return False
        elif isinstance(value, dict):
            stack.extend(value)  # the keys
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return True


def unencodable_field(params: Any) -> str | None:
    """The path (``messages[0].content``) of a string that is not valid Unicode,
    or None. Iterative: params may nest as deep as the JSON parser allows."""
    if _all_encodable(params):
        return None
    stack: list[tuple[Any, str]] = [(params, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if not _encodable(value):
                return path or "params"
        elif isinstance(value, dict):
            for key, item in value.items():
                if not _encodable(key):  # the name itself: name its object
                    return path or "params"
                name = key if _FIELD_NAME.fullmatch(key) else "*"
                stack.append((item, f"{path}.{name}" if path else name))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(value))
    return "params"
