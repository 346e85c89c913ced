"""JSON-RPC plumbing that pygls leaves out: every message gets an answer, none kills us.

pygls parses each body with ``json.loads(body, object_hook=structure_message)``,
so its typed structuring runs on every nested object, and a message it cannot
structure is logged and never answered. Here:

- :class:`SidecarProtocol` takes the parsed JSON as it is, checks the envelope
  (``jsonrpc: "2.0"``, a string method, an int or string id) and structures only
  the top-level message, so a client always gets an error with its own id:
  -32600 for a bad envelope, -32602 for params of the wrong shape or holding
  text that cannot be encoded (:mod:`sidecar.rpc.wiretext`). It applies the LSP
  lifecycle (:mod:`sidecar.rpc.lifecycle`), gives LSP params that are all optional
  their default when a client leaves them out (Vim sends ``initialized`` without
  params), serves notifications sent with an id (``$/cancelRequest``) and
  answers them, reads the client's
  answers to our requests without typing them, numbers our requests with
  integers (Vim cannot answer string ids), and sends ``"id": null`` when a
  message's id cannot be known.
- :func:`raw_params_converter` keeps the params of our custom methods as plain
  dicts (pygls would make namedtuples); the server validates them itself.
- :class:`sidecar.rpc.framing.FramedStdin` reads LSP framing leniently and caps bodies.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import attrs
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.protocol import JsonRPCNotification, JsonRPCRequestMessage, default_converter
from pygls.protocol.json_rpc import RPCRequest
from pygls.protocol.language_server import LanguageServerProtocol

from sidecar.rpc.framing import MAX_MESSAGE_BYTES, OVERSIZE, UNREADABLE, FramedStdin, frame
from sidecar.rpc.lifecycle import Lifecycle
from sidecar.rpc.wiretext import unencodable_field

__all__ = [
    "MAX_MESSAGE_BYTES",
    "BoundedStdin",
    "SidecarProtocol",
    "raw_params_converter",
]

_pygls_log = logging.getLogger("pygls.protocol.json_rpc")
log = logging.getLogger(__name__)

BoundedStdin = FramedStdin  # its former name (the bench prototypes use it)
INTERNAL_ERROR = "internal error (a bug: please report it; the sidecar's log has the details)"


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
    if OVERSIZE in message:
        return f"message of {message[OVERSIZE]} bytes is over the {MAX_MESSAGE_BYTES} limit"
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


def _params_all_optional(message_type: Any) -> bool:
    """Whether the LSP message type's params can be built from ``{}``."""
    if message_type is None or not attrs.has(message_type):
        return False
    field = attrs.fields_dict(message_type).get("params")
    params_type = field.type if field is not None else None
    return (
        isinstance(params_type, type)
        and attrs.has(params_type)
        and all(f.default is not attrs.NOTHING for f in attrs.fields(params_type))
    )


def _response_error(raw: Any) -> types.ResponseError:
    """A client's error object, whatever its shape: it only has to end a wait."""
    raw = raw if isinstance(raw, dict) else {}
    code = raw.get("code")
    message = raw.get("message")
    return types.ResponseError(
        code=code if isinstance(code, int) and not isinstance(code, bool) else -32603,
        message=message if isinstance(message, str) else "error",
    )


class SidecarProtocol(LanguageServerProtocol):
    def __init__(self, server: Any, converter: Any) -> None:
        super().__init__(server, converter)
        self.lifecycle = Lifecycle()
        self._request_ids = itertools.count(1)
        self._cancelling: set[Any] = set()  # ids of requests the client cancelled in flight

    def _handle_cancel_notification(self, msg_id: Any) -> None:
        future = self._request_futures.get(msg_id)
        if future is not None and not future.done():
            self._cancelling.add(msg_id)
        super()._handle_cancel_notification(msg_id)

    def _send_handler_result(self, future: Any, *, msg_id: Any) -> None:
        # A cancelled request answers -32800 however its handler ended: cleanup that
        # fails on the way out (a connection torn down mid-read) is not the answer.
        if msg_id in self._cancelling:
            self._cancelling.discard(msg_id)
            if not future.cancelled():
                self._request_futures.pop(msg_id, None)
                self._reply_error(msg_id, -32800, f'Request with id "{msg_id}" is canceled')
                return
        super()._send_handler_result(future, msg_id=msg_id)

    def structure_message(self, data: Any) -> Any:
        # Called by json.loads for every object, nested ones too: keep them as
        # they are; handle_message structures the top-level message only.
        return data

    def handle_message(self, message: Any) -> None:
        if isinstance(message, dict) and UNREADABLE in message:  # from FramedStdin
            self._reply_error(None, -32700, f"parse error: {message[UNREADABLE]}")
            return
        problem = _envelope_problem(message)
        msg_id = message.get("id") if isinstance(message, dict) else None
        if problem is not None:
            self._reply_error(msg_id if _valid_id(msg_id) else None, -32600, problem)
            return
        if "method" not in message:
            self._handle_client_answer(message)
            return
        method, is_request = message["method"], "id" in message
        refusal = self.lifecycle.refuse(method, is_request)
        if refusal is not None:
            if is_request:
                self._reply_error(msg_id, *refusal)
            else:
                log.info("dropped %s: %s", method, refusal[1])
            return
        params = message.get("params")
        if (field := unencodable_field(params)) is not None:
            text = f"invalid params: {field}: text that cannot be encoded (a lone surrogate)"
            if is_request:
                self._reply_error(msg_id, -32602, text, {"field": field})
            else:
                log.warning("ignored %s: %s", method, text)
            return
        if params is None and _params_all_optional(self.get_message_type(method)):
            message = {**message, "params": {}}  # left out, as JSON-RPC allows: the default
        try:
            typed = super().structure_message(message)
        except JsonRpcException as exc:
            if is_request:
                code = -32602 if isinstance(exc, JsonRpcInvalidParams) else -32600
                self._reply_error(msg_id, code, f"invalid {method} message")
            else:  # a notification we cannot read: nobody to answer
                log.warning("ignored an unreadable %s notification", method)
            return
        self.lifecycle.accepted(method)
        if is_request and not isinstance(typed, RPCRequest):
            self._answer_notification_sent_as_request(msg_id, method, typed)
        super().handle_message(typed)

    def _answer_notification_sent_as_request(self, msg_id: Any, method: str, typed: Any) -> None:
        """An LSP notification sent with an id (``$/cancelRequest`` from some clients).

        Structuring it as the notification it is drops the id, so pygls would
        serve it and never answer: the client would wait for good. It is served
        as the notification, and answered with a null result first (``exit``
        ends the process).
        """
        cancelled = getattr(typed.params, "id", None) if method == types.CANCEL_REQUEST else None
        if cancelled is not None and cancelled == msg_id:
            # The cancelled request gets its -32800 under that id: a second answer
            # with it would be taken for that request's.
            self._reply_error(None, -32600, "a $/cancelRequest with the id it cancels")
        else:
            self._send_response(msg_id, result=None)

    def _handle_client_answer(self, message: dict[str, Any]) -> None:
        """The client's answer to one of our requests, as sent: a ``null`` result or
        an error of any shape ends the wait like a typed result does."""
        msg_id = message["id"]
        self._result_types.pop(msg_id, None)
        if "error" in message:
            self._handle_response(msg_id, None, _response_error(message["error"]))
        else:
            self._handle_response(msg_id, message.get("result"))

    def send_request(
        self,
        method: str,
        params: Any | None = None,
        callback: Any = None,
        msg_id: Any = None,
    ) -> Any:
        # pygls numbers requests with UUID strings; Vim answers integer ids only.
        if msg_id is None:
            msg_id = next(self._request_ids)
        return super().send_request(method, params, callback, msg_id)

    def _send_response(
        self, msg_id: Any, result: Any | None = None, error: types.ResponseError | None = None
    ) -> None:
        if error is not None and error.code == types.ErrorCodes.InternalError:
            # pygls puts the exception's text (paths, values) in the message: it
            # went to the log; the client only learns that it is a bug.
            error = types.ResponseError(code=error.code, message=INTERNAL_ERROR)
        if msg_id is None and error is not None:
            # lsprotocol leaves None out, but an error about a message whose id
            # cannot be known must say "id": null (JSON-RPC 2.0 section 5).
            body: dict[str, Any] = {"code": error.code, "message": error.message}
            if error.data is not None:
                body["data"] = error.data
            self._send_data({"jsonrpc": "2.0", "id": None, "error": body})
            return
        if error is None and isinstance(result, dict | list) and msg_id not in self._result_types:
            # A sidecar/* result, already in its wire form (handlers.py): one dump and
            # one write. pygls would wrap it in an attrs message and walk it again with
            # its converter first, which for a status of 1,000 keys cost milliseconds.
            writer = self.writer
            if writer is not None:
                message = {"jsonrpc": "2.0", "id": msg_id, "result": result}
                data = frame(message, self._serialize_message)
                if _pygls_log.isEnabledFor(logging.INFO):  # as pygls logs what it sends
                    _pygls_log.info("Sending data: %s", data.partition("\r\n\r\n")[2])
                writer.write(data.encode("ascii"))
            return
        super()._send_response(msg_id, result, error)

    def _reply_error(self, msg_id: Any, code: int, message: str, data: Any = None) -> None:
        prefixed = code != -32600 or message.startswith("invalid request")
        text = message if prefixed else f"invalid request: {message}"
        self._send_response(msg_id, error=types.ResponseError(code=code, message=text, data=data))
