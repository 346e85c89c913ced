"""What the fake answers, one step per request: a reply (its content blocks, usage,
windows and how it is cut), an error, or a dropped connection.

The Python classes are the single source of truth; their JSON form is parsed by
:mod:`sidecar.fake._script`, which calls these very constructors, so the two forms
cannot drift apart: all validation lives in the constructors' ``__post_init__``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, cast

# -- content blocks ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Thinking:
    text: str
    signature: str = "fake-signature"


@dataclass(frozen=True, slots=True)
class RedactedThinking:
    data: str


@dataclass(frozen=True, slots=True)
class ToolUse:
    id: str
    name: str
    input: Mapping[str, Any] = field(default_factory=dict)


Block: TypeAlias = Text | Thinking | RedactedThinking | ToolUse


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts in Anthropic's terms: ``input`` excludes the cached tokens."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0

    def __post_init__(self) -> None:
        for name in ("input", "output", "cache_read", "cache_write"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"usage.{name} must be a non-negative integer, got {value!r}")


# How the SSE byte stream is cut into HTTP chunks: None = one chunk per event, an int =
# chunks of that many bytes, "random" = random sizes (1..64) from ``seed``, a list = these
# sizes in turn, cycling. Cuts ignore event, line, JSON and UTF-8 boundaries on purpose.
Split: TypeAlias = int | Literal["random"] | Sequence[int] | None


def _block(value: object) -> Block:
    """One content block from a Python block, a plain string or an API-shaped dict."""
    if isinstance(value, Text | Thinking | RedactedThinking | ToolUse):
        return value
    if isinstance(value, str):
        return Text(value)
    if not isinstance(value, Mapping):
        raise ValueError(f"content block must be a block, a string or an object: {value!r}")
    # The JSON form is exactly the Anthropic content-block shape, which is what a test
    # author in Node or Lua already has at hand.
    kind = value.get("type")
    fields = {k: v for k, v in value.items() if k != "type"}
    try:
        if kind == "text":
            return Text(**fields)
        if kind == "thinking":
            return Thinking(text=fields.pop("thinking"), **fields)
        if kind == "redacted_thinking":
            return RedactedThinking(**fields)
        if kind == "tool_use":
            return ToolUse(**fields)
    except (TypeError, KeyError) as exc:
        raise ValueError(f"bad {kind} block {dict(value)!r}: {exc}") from None
    raise ValueError(f"unknown content block type {kind!r}")


def _check_block(block: Block) -> None:
    strings: dict[str, object]
    if isinstance(block, Text):
        strings = {"text": block.text}
    elif isinstance(block, Thinking):
        strings = {"thinking": block.text, "signature": block.signature}
    elif isinstance(block, RedactedThinking):
        strings = {"data": block.data}
    else:
        strings = {"id": block.id, "name": block.name}
        if not isinstance(block.input, Mapping):
            raise ValueError(f"tool_use input must be an object, got {block.input!r}")
    for name, value in strings.items():
        if not isinstance(value, str):
            raise ValueError(f"{type(block).__name__}.{name} must be a string, got {value!r}")


def _non_negative(name: str, value: object, *, integer: bool = False) -> None:
    kinds: tuple[type, ...] = (int,) if integer else (int, float)
    if (
        not isinstance(value, kinds)
        or isinstance(value, bool)
        or value < 0  # type: ignore[operator]
        or (isinstance(value, float) and not math.isfinite(value))
    ):
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")


# -- steps ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful answer, streamed or whole, with optional stream faults.

    Event counts (``stall_after``, ``error_after``, ``drop_after``) count SSE events as
    written on the wire, pings and ``[DONE]`` included; a fault at K happens after K
    events, so 0 means before the first one.
    """

    content: Sequence[Block] | str | None = None
    """None: a short deterministic text naming the model and the last user message's
    length (never anything secret)."""
    stop_reason: str | None = None
    """None: ``tool_use`` when the content has a tool call, else ``end_turn``. OpenAI
    replies map it to a finish_reason (end_turn→stop, max_tokens→length, …)."""
    usage: Usage | Mapping[str, int] | None = None
    """None: rough estimates from the request and reply sizes."""
    chunk: int | None = None
    """Characters per delta; None: about three words per delta."""
    split: Split = None
    seed: int = 0
    interval: float = 0.0
    """Seconds to wait after each HTTP chunk: a slow trickle."""
    stall: float = 0.0
    """Seconds to stall after ``stall_after`` events (0: before the status line)."""
    stall_after: int = 0
    error_after: int | None = None
    """Send a mid-stream ``error`` event after this many events, then end the stream."""
    error_type: str = "overloaded_error"
    error_message: str = "Overloaded"
    drop_after: int | None = None
    """Close the connection after this many events (0: right after the headers)."""
    ping_every: int = 10
    """Anthropic: a ``ping`` after message_start and after every N-th delta (0: only
    the first)."""
    delta_usage: Literal["full", "output"] = "full"
    """Anthropic message_delta usage: all four counts, as the current API sends, or
    only ``output_tokens``, as it used to."""
    content_parts: bool = False
    """OpenAI endpoints: ``delta.content`` as a list of typed parts, as Mistral's
    reasoning models send it: ``[{"type": "thinking", "thinking": [{"type": "text",
    "text": …}]}]`` for thinking, ``[{"type": "text", "text": …}]`` for text."""
    echo_key: bool = False
    """Replace ``{key}`` in ``error_message`` by the request's key, as a provider that
    quotes the key back in an error event would."""
    endless_after: int | None = None
    """After this many events, send ``endless`` until the client hangs up."""
    endless: Literal["line", "events"] = "line"
    """``line``: a text delta whose line never ends; ``events``: events every client
    skips (pings, comments), forever."""
    gzip: bool = False
    """Send the stream gzip-compressed (``content-encoding: gzip``); with
    ``endless_after``, a decompression bomb: about 1 KiB on the wire per MiB."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """More response headers, e.g. a provider's rate-limit windows on a success
    (``{"anthropic-ratelimit-requests-remaining": "0", …}``); see also
    :func:`sidecar.fake._ratelimit` for headers computed from real buckets."""

    def __post_init__(self) -> None:
        if not isinstance(self.headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.headers.items()
        ):
            raise ValueError(f"headers must map strings to strings, got {self.headers!r}")
        content = self.content
        if content is not None:
            items: Sequence[object] = [content] if isinstance(content, str) else content
            if not isinstance(items, Sequence):
                raise ValueError(f"content must be a list of blocks, got {content!r}")
            blocks = tuple(_block(item) for item in items)
            for block in blocks:
                _check_block(block)
            object.__setattr__(self, "content", blocks)
        if isinstance(self.usage, Mapping):
            try:
                object.__setattr__(self, "usage", Usage(**self.usage))
            except TypeError as exc:
                raise ValueError(f"bad usage {dict(self.usage)!r}: {exc}") from None
        elif self.usage is not None and not isinstance(self.usage, Usage):
            raise ValueError(f"usage must be a Usage or an object, got {self.usage!r}")
        if self.stop_reason is not None and not isinstance(self.stop_reason, str):
            raise ValueError(f"stop_reason must be a string, got {self.stop_reason!r}")
        if self.chunk is not None and (
            not isinstance(self.chunk, int) or isinstance(self.chunk, bool) or self.chunk < 1
        ):
            raise ValueError(f"chunk must be a positive integer, got {self.chunk!r}")
        object.__setattr__(self, "split", _check_split(self.split))
        for name in ("interval", "stall"):
            _non_negative(name, getattr(self, name))
        for name in ("stall_after", "ping_every", "seed"):
            _non_negative(name, getattr(self, name), integer=True)
        for name in ("error_after", "drop_after", "endless_after"):
            if getattr(self, name) is not None:
                _non_negative(name, getattr(self, name), integer=True)
        if self.endless not in ("line", "events"):
            raise ValueError(f"endless must be 'line' or 'events', got {self.endless!r}")
        if not isinstance(self.gzip, bool) or not isinstance(self.echo_key, bool):
            raise ValueError("gzip and echo_key must be true or false")
        if self.delta_usage not in ("full", "output"):
            raise ValueError(f"delta_usage must be 'full' or 'output', got {self.delta_usage!r}")
        if not isinstance(self.content_parts, bool):
            raise ValueError(f"content_parts must be true or false, got {self.content_parts!r}")

    @property
    def blocks(self) -> tuple[Block, ...] | None:
        return cast("tuple[Block, ...] | None", self.content)

    @property
    def plain(self) -> bool:
        """True when nothing but whole events go out: the fast single-write path."""
        return (
            self.split is None
            and self.interval == 0
            and self.stall == 0
            and self.error_after is None
            and self.drop_after is None
            and self.endless_after is None
            and not self.gzip
        )


def _check_split(split: object) -> Split:
    if split is None or split == "random":
        return cast("Split", split)
    if isinstance(split, int) and not isinstance(split, bool) and split > 0:
        return split
    if isinstance(split, Sequence) and not isinstance(split, str) and split:
        sizes = tuple(split)
        if all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in sizes):
            return sizes
    raise ValueError(
        f"split must be None, a positive int, 'random' or a list of positive ints, got {split!r}"
    )


@dataclass(frozen=True, slots=True)
class Window:
    """One rate-limit window an error reports, in the flavour's headers: Anthropic's
    ``anthropic-ratelimit-<name>-{limit,remaining,reset}`` (reset in RFC 3339), OpenAI's
    ``x-ratelimit-{limit,remaining,reset}-<name>`` (reset as a duration like ``6m0s``).
    Real providers report every window on a 429, the ones with headroom too."""

    remaining: int
    reset_in: float
    limit: int | None = None
    """None: ``remaining`` (at least 1)."""

    def __post_init__(self) -> None:
        _non_negative("remaining", self.remaining, integer=True)
        _non_negative("reset_in", self.reset_in)
        if self.limit is not None:
            _non_negative("limit", self.limit, integer=True)

    @property
    def limit_value(self) -> int:
        return self.limit if self.limit is not None else max(self.remaining, 1)


def _window(name: object, value: object) -> Window:
    if not isinstance(name, str) or not name or not name.replace("-", "").isalnum():
        raise ValueError(f"a window name must be letters, digits and dashes, got {name!r}")
    if isinstance(value, Window):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"window {name!r} must be an object, got {value!r}")
    try:
        return Window(**value)
    except TypeError as exc:
        raise ValueError(f"bad window {name!r} {dict(value)!r}: {exc}") from None


# The status the real Anthropic API uses for each error type.
STATUS_BY_TYPE: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "insufficient_quota": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


@dataclass(frozen=True, slots=True)
class Error:
    """An HTTP error response, rendered in the flavour of the endpoint that was called.

    ``type`` uses Anthropic's names; the OpenAI renderer maps them to OpenAI's type and
    code (rate_limit_error → type "requests", code "rate_limit_exceeded", …).
    """

    type: str = "api_error"
    message: str | None = None
    """None: the flavour's usual message for ``type``."""
    status: int | None = None
    """None: the status the real API uses for ``type`` (500 if unknown)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    code: str | None = None
    """OpenAI error code; None: derived from ``type``."""
    body: str | bytes | None = None
    """A raw body sent instead of the JSON error, e.g. a proxy's HTML page; bytes are sent
    as they are (invalid UTF-8, a stream cut inside a character)."""
    content_type: str | None = None
    retry_after: float | None = None
    """Adds ``retry-after`` (whole seconds, rounded up)."""
    reset_in: float | None = None
    """Reports a spent ``requests`` window (remaining 0) in the flavour's rate-limit
    headers, computed when the response is sent: ``anthropic-ratelimit-requests-*``
    (reset in RFC 3339) or ``x-ratelimit-*-requests`` (reset as a duration such as
    ``6m0s``)."""
    stall: float = 0.0
    """Seconds to wait before answering."""
    windows: Mapping[str, Window] = field(default_factory=dict)
    """More rate-limit windows to report (name → :class:`Window`, or its fields as an
    object), e.g. ``{"tokens": Window(remaining=149984, reset_in=360)}``; ``reset_in``
    above is a spent ``requests`` window."""
    clock_skew: float = 0.0
    """Seconds the provider's clock is ahead of this machine's (negative: behind). Its
    ``Date`` header and the absolute reset times (Anthropic's RFC 3339) are on that
    clock; durations (``retry-after``, OpenAI's resets) need none."""
    echo_key: bool = False
    """Replace ``{key}`` in ``message`` (or a text ``body``) by the request's key, as a
    provider that quotes the key back ("Incorrect API key provided: sk-…") would."""

    def __post_init__(self) -> None:
        if not isinstance(self.windows, Mapping):
            raise ValueError(f"windows must be an object, got {self.windows!r}")
        windows = {name: _window(name, value) for name, value in self.windows.items()}
        object.__setattr__(self, "windows", windows)
        skew = self.clock_skew
        if not isinstance(skew, int | float) or isinstance(skew, bool) or not math.isfinite(skew):
            raise ValueError(f"clock_skew must be a number of seconds, got {skew!r}")
        if not isinstance(self.type, str):
            raise ValueError(f"type must be a string, got {self.type!r}")
        if self.status is not None and (
            not isinstance(self.status, int) or not 100 <= self.status <= 999
        ):
            raise ValueError(f"status must be an HTTP status code, got {self.status!r}")
        if not isinstance(self.headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.headers.items()
        ):
            raise ValueError(f"headers must map strings to strings, got {self.headers!r}")
        for name in ("message", "code", "body", "content_type"):
            value = getattr(self, name)
            if name == "body" and isinstance(value, bytes):
                continue
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a string, got {value!r}")
        for name in ("retry_after", "reset_in"):
            if getattr(self, name) is not None:
                _non_negative(name, getattr(self, name))
        _non_negative("stall", self.stall)

    @property
    def http_status(self) -> int:
        return self.status if self.status is not None else STATUS_BY_TYPE.get(self.type, 500)

    def all_windows(self, requests_limit: int) -> dict[str, Window]:
        """The windows to report: a spent ``requests`` window for ``reset_in``, then
        ``windows``."""
        out: dict[str, Window] = {}
        if self.reset_in is not None:
            out["requests"] = Window(0, self.reset_in, requests_limit)
        out.update(self.windows)
        return out


@dataclass(frozen=True, slots=True)
class Drop:
    """Close the connection without sending any response (after ``stall`` seconds)."""

    stall: float = 0.0

    def __post_init__(self) -> None:
        _non_negative("stall", self.stall)


Step: TypeAlias = Reply | Error | Drop
