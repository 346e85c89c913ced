"""What both wire flavours share: the request context, the flavour interface, and
turning a scripted reply into concrete blocks, deltas and usage."""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring
from typing import Any

from sidecar.fake._steps import Block, Error, Reply, Text, Thinking, ToolUse, Usage


def dumps(value: object) -> str:
    # Compact, and raw UTF-8 rather than \u escapes, like the real APIs: that is what
    # makes byte-level splits land inside multi-byte characters.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def dumpb(value: object) -> bytes:
    return dumps(value).encode()


def dump_str(value: str) -> bytes:
    """A JSON string literal, ten times faster than dumpb: json.dumps builds a new
    encoder on every call with non-default options."""
    return encode_basestring(value).encode()


@dataclass(frozen=True, slots=True)
class Context:
    """One request as the renderers see it."""

    no: int
    model: str
    body: Mapping[str, Any]
    key_fingerprint: str | None = None
    keep_alive: bool = True
    extra_headers: tuple[tuple[str, str], ...] = ()
    """Sent with every response to this request: the key's rate-limit headers."""

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True

    @property
    def include_usage(self) -> bool:
        options = self.body.get("stream_options")
        return isinstance(options, Mapping) and options.get("include_usage") is True


Headers = list[tuple[str, str]]


class Flavour(ABC):
    """One provider's wire format."""

    name: str

    @abstractmethod
    def credential(self, headers: Mapping[str, str]) -> str | None: ...

    @abstractmethod
    def model(self, body: Mapping[str, Any], path: str) -> str | None: ...

    @abstractmethod
    def check_request(self, headers: Mapping[str, str], body: object, path: str) -> Error | None:
        """An error for a request the real API would reject before looking at the key's
        script (missing version header, missing fields), else None."""

    @abstractmethod
    def missing_key(self) -> Error: ...

    @abstractmethod
    def unknown_key(self, fingerprint: str) -> Error: ...

    @abstractmethod
    def base_headers(self, ctx: Context) -> Headers: ...

    @abstractmethod
    def error(self, err: Error, ctx: Context) -> tuple[int, Headers, bytes]:
        """Status, extra headers (content type included) and body."""

    @abstractmethod
    def stream_events(self, reply: Reply, ctx: Context) -> list[bytes]:
        """Every SSE event of the reply, each complete and encoded."""

    @abstractmethod
    def midstream_error(self, err_type: str, message: str) -> bytes: ...

    @abstractmethod
    def message(self, reply: Reply, ctx: Context) -> bytes:
        """The whole reply as a non-streaming JSON body."""


# -- shared helpers ---------------------------------------------------------------------


def _text_length(content: object) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(
            len(part["text"])
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return 0


def default_text(ctx: Context) -> str:
    messages = ctx.body.get("messages")
    length = 0
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, Mapping) and message.get("role") == "user":
                length = _text_length(message.get("content"))
                break
    return f"Hello from the fake {ctx.model}. Your last message was {length} characters long."


def blocks(reply: Reply, ctx: Context) -> tuple[Block, ...]:
    scripted = reply.blocks
    return scripted if scripted is not None else (Text(default_text(ctx)),)


def stop_reason(reply: Reply, content: tuple[Block, ...]) -> str:
    if reply.stop_reason is not None:
        return reply.stop_reason
    return "tool_use" if any(isinstance(b, ToolUse) for b in content) else "end_turn"


def usage(reply: Reply, ctx: Context, content: tuple[Block, ...]) -> Usage:
    if isinstance(reply.usage, Usage):
        return reply.usage
    # About four characters a token: enough for cost and display code to see numbers.
    request_chars = len(dumps(ctx.body.get("messages", [])))
    reply_chars = 0
    for block in content:
        if isinstance(block, Text | Thinking):
            reply_chars += len(block.text)
        elif isinstance(block, ToolUse):
            reply_chars += len(dumps(dict(block.input)))
    return Usage(input=max(1, request_chars // 4), output=max(1, reply_chars // 4))


_WORD = re.compile(r"\s*\S+")


def pieces(text: str, chunk: int | None) -> list[str]:
    """The deltas a text is streamed as: ``chunk`` characters each, or about three words."""
    if not text:
        return []
    if chunk is not None:
        return [text[i : i + chunk] for i in range(0, len(text), chunk)]
    words: list[str] = _WORD.findall(text)
    trailing = text[len(text.rstrip()) :]
    if not words:
        return [text]
    words[-1] += trailing
    if "".join(words) != text:  # cannot happen, but never lose text to a regex
        return [text]
    return ["".join(words[i : i + 3]) for i in range(0, len(words), 3)]


def tool_json(block: ToolUse) -> str:
    return dumps(dict(block.input))


def bearer(headers: Mapping[str, str]) -> str | None:
    scheme, _, token = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def retry_after_value(seconds: float) -> str:
    return str(math.ceil(seconds))


def rfc3339_in(seconds: float, clock_skew: float = 0.0) -> str:
    """A time ``seconds`` from now on a clock ``clock_skew`` seconds ahead of ours."""
    when = datetime.now(UTC) + timedelta(seconds=math.ceil(seconds) + clock_skew)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def http_date(clock_skew: float = 0.0) -> str:
    """The ``Date`` header (RFC 9110 IMF-fixdate) of a server whose clock is
    ``clock_skew`` seconds ahead of ours."""
    return email.utils.formatdate(time.time() + clock_skew, usegmt=True)


def go_duration(seconds: float) -> str:
    """A duration as OpenAI's rate-limit headers write it: ``20ms``, ``1.5s``, ``6m0s``."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    secs_text = f"{secs:.3f}".rstrip("0").rstrip(".")
    out = f"{secs_text}s"
    if hours or minutes:
        out = f"{int(minutes)}m{out}"
    if hours:
        out = f"{int(hours)}h{out}"
    return out


def now() -> int:
    return int(time.time())


def error_response(
    err: Error, reset_headers: Headers, json_body: bytes
) -> tuple[int, Headers, bytes]:
    """An error answer in either flavour: the flavour gives its rate-limit headers (for
    ``err.all_windows``) and its JSON error body (sent unless ``err.body`` holds raw
    bytes or text, e.g. a proxy's HTML page). Like every real server's answer it has a
    ``Date``, on the provider's clock."""
    headers: Headers = [("date", http_date(err.clock_skew))]
    if err.retry_after is not None:
        headers.append(("retry-after", retry_after_value(err.retry_after)))
    headers += reset_headers
    headers += list(err.headers.items())
    if err.body is not None:
        content_type = err.content_type or "text/plain; charset=utf-8"
        body = err.body if isinstance(err.body, bytes) else err.body.encode()
    else:
        content_type = err.content_type or "application/json"
        body = json_body
    headers.append(("content-type", content_type))
    return err.http_status, headers, body
