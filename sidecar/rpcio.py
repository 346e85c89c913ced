"""JSON-RPC plumbing that pygls leaves out: every message gets an answer, none kills us.

pygls parses each body with ``json.loads(body, object_hook=structure_message)``,
so its typed structuring runs on every nested object, and a message it cannot
structure is logged and never answered. Here:

- :class:`SidecarProtocol` takes the parsed JSON as it is, checks the envelope
  (``jsonrpc: "2.0"``, a string method, an int or string id) and structures only
  the top-level message, so a client always gets an error with its own id:
  -32600 for a bad envelope, -32602 for LSP params of the wrong shape.
- :func:`raw_params_converter` keeps the params of our custom methods as plain
  dicts (pygls would make namedtuples); the server validates them itself.
- :class:`BoundedStdin` caps header lines and bodies: a body over the limit is
  answered -32600 at once and its bytes are discarded as they arrive.
"""

from __future__ import annotations

import logging
from typing import Any, BinaryIO

import attrs
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.protocol import JsonRPCNotification, JsonRPCRequestMessage, default_converter
from pygls.protocol.language_server import LanguageServerProtocol

__all__ = [
    "MAX_MESSAGE_BYTES",
    "BoundedStdin",
    "SidecarProtocol",
    "raw_params_converter",
]

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # no editor sends a request anywhere near this
MAX_HEADER_LINE = 64 * 1024
_OVERSIZE = "sidecar.oversize"  # marks the stand-in body of a message over the limit


def raw_params_converter() -> Any:
    """pygls's converter, but custom methods keep their params as plain dicts."""
    converter = default_converter()  # type: ignore[no-untyped-call]

    def keep_raw(obj: dict[str, Any], cls: type) -> Any:
        # JSON-RPC lets params be left out: they are None then.
        return cls(**{name: obj.get(name) for name in attrs.fields_dict(cls)})

    converter.register_structure_hook(JsonRPCRequestMessage, keep_raw)
    converter.register_structure_hook(JsonRPCNotification, keep_raw)
    return converter


def _valid_id(value: Any) -> bool:
    return isinstance(value, int | str) and not isinstance(value, bool)


def _envelope_problem(message: Any) -> str | None:
    """Why ``message`` is not a JSON-RPC 2.0 message we can act on, or None."""
    if not isinstance(message, dict):
        return "not a JSON-RPC 2.0 message"
    if _OVERSIZE in message:
        return f"message of {message[_OVERSIZE]} bytes is over the {MAX_MESSAGE_BYTES} limit"
    if message.get("jsonrpc") != "2.0":
        return 'jsonrpc must be "2.0"'
    if "id" in message and not _valid_id(message["id"]):
        return "id must be a number or a string"
    if "method" in message:
        if not isinstance(message["method"], str):
            return "method must be a string"
    elif "id" not in message or ("result" not in message and "error" not in message):
        return "neither a request, a notification nor a response"
    return None


class SidecarProtocol(LanguageServerProtocol):
    def structure_message(self, data: Any) -> Any:
        # Called by json.loads for every object, nested ones too: keep them as
        # they are; handle_message structures the top-level message only.
        return data

    def handle_message(self, message: Any) -> None:
        problem = _envelope_problem(message)
        msg_id = message.get("id") if isinstance(message, dict) else None
        if problem is not None:
            self._reply_error(msg_id if _valid_id(msg_id) else None, -32600, problem)
            return
        is_request = "method" in message and "id" in message
        try:
            typed = super().structure_message(message)
        except JsonRpcException as exc:
            if is_request:
                code = -32602 if isinstance(exc, JsonRpcInvalidParams) else -32600
                self._reply_error(msg_id, code, f"invalid {message['method']} message")
            else:  # a notification or a response we cannot read: nobody to answer
                log.warning(
                    "ignored an unreadable %s",
                    "notification" if "method" in message else "response",
                )
            return
        super().handle_message(typed)

    def _reply_error(self, msg_id: Any, code: int, message: str) -> None:
        error = types.ResponseError(
            code=code, message=f"invalid request: {message}" if code == -32600 else message
        )
        self._send_response(msg_id, error=error)


class BoundedStdin:
    """Standard input for pygls's reader, with a cap on what one message may hold.

    pygls reads a body with ``stdin.read(content_length)``: a huge declared
    length would allocate it all at once and kill the process. A body over the
    limit is replaced by a small marker object that :class:`SidecarProtocol`
    answers with -32600, and its real bytes are skipped before the next read.
    """

    def __init__(self, raw: BinaryIO, limit: int = MAX_MESSAGE_BYTES) -> None:
        self._raw = raw
        self._limit = limit
        self._skip = 0  # bytes of an oversized body still to discard

    def _discard(self) -> None:
        while self._skip > 0:
            chunk = self._raw.read(min(self._skip, 1 << 20))
            if not chunk:
                self._skip = 0
                return
            self._skip -= len(chunk)

    def readline(self) -> bytes:
        self._discard()
        return self._raw.readline(MAX_HEADER_LINE)

    def read(self, n: int) -> bytes:
        self._discard()
        if n > self._limit:
            self._skip = n
            return b'{"%s": %d}' % (_OVERSIZE.encode(), n)
        return self._raw.read(n)

    def close(self) -> None:
        self._raw.close()
