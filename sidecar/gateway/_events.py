"""Watching a provider's SSE bytes on the side, without altering them.

The gateway forwards the upstream bytes as they come; the events go through the same
parsers the sidecar's own requests use (:class:`AnthropicParser`,
:class:`OpenAIParser`), which tell whether the answer has begun (the first content
event), whether an ``error`` event came instead, and the usage (cache included).

Every event is parsed only until the answer has begun. From then on the gateway needs
just the usage, an error event and the end, which ride on a few events of their own:
a byte search (one regular expression, in C) over what arrived finds them, and only
those are decoded and handed to the parser. The text deltas in between, nearly all of
a stream, are never decoded. A false hit (a model writing ``"type":"error"``
in its text, where JSON escapes the quotes anyway) costs one decode, never a wrong
verdict: the parser decides from the decoded event.
"""

from __future__ import annotations

import re

from sidecar.gateway._responses import ResponsesParser
from sidecar.providers import MessageEnd, UpstreamFailure, Usage, UsageDelta
from sidecar.providers._anthropic import AnthropicParser
from sidecar.providers._openai import OpenAIParser
from sidecar.providers._sse import Parser

__all__ = ["EventSplitter", "StreamWatch"]

# The events that carry usage, an error or the end, once the answer has begun. Each
# search starts with a literal, which the regex engine finds at C speed (a leading `"`
# or an alternation would have it stop at every quote of the JSON).
_LATE_EVENTS = {
    # Anthropic: message_delta (output usage), message_stop, error (by the type every
    # event of its format carries; message_start for a host that sends content first).
    "anthropic": (
        re.compile(rb'"type"\s*:\s*"(?:message_delta|message_stop|message_start|error)"'),
    ),
    # OpenAI: [DONE], an error, a usage object, a finish_reason (the end of a stream that
    # has no [DONE]); the "usage": null and "finish_reason": null of every chunk do not
    # count.
    "openai": (
        re.compile(rb"\[DONE\]"),
        re.compile(rb'"error"\s*:\s*[^\sn]'),
        re.compile(rb'"usage"\s*:\s*\{'),
        re.compile(rb'"finish_reason"\s*:\s*"'),
    ),
    # OpenAI's Responses API: error, response.failed, and the ends, which carry the usage.
    "responses": (
        re.compile(rb'"type"\s*:\s*"(?:error|response\.(?:completed|incomplete|failed))"'),
    ),
}


class EventSplitter:
    """Raw SSE bytes → whole events (their lines, without the blank line that ends
    them), fed in chunks cut anywhere.

    ``overflow`` turns True when one event grows past ``max_bytes``: the watcher then
    stops looking (the bytes still flow to the client; only the usage is lost).
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.overflow = False
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> bytes:
        """The events completed by ``chunk``, as one run of bytes (events separated by
        blank lines, ``\\n`` line ends); empty if none."""
        buffer = self._buffer
        crlf = buffer.endswith(b"\r")  # a \r\n cut between two chunks
        buffer += chunk
        if crlf or b"\r" in chunk:
            buffer[:] = buffer.replace(b"\r\n", b"\n")
        end = buffer.rfind(b"\n\n")
        if end < 0:
            if len(buffer) > self.max_bytes:
                self.overflow = True
                buffer.clear()
            return b""
        done = bytes(buffer[:end])
        del buffer[: end + 2]
        return done


def decode(event: bytes) -> tuple[str, str]:
    """One event's lines → (its name, its data lines joined)."""
    name = ""
    data: list[str] = []
    for raw in event.split(b"\n"):
        line = raw.decode("utf-8", "replace")
        if not line or line.startswith(":"):
            continue  # a comment (keep-alive)
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
    return name or "message", "\n".join(data)


class StreamWatch:
    """What one streamed answer has shown so far: content, an error event, usage, the end."""

    def __init__(self, stream_format: str, secret: str, max_event_bytes: int) -> None:
        # stream_format: Route.stream_format.
        self._parser: Parser = (
            AnthropicParser(secret)
            if stream_format == "anthropic"
            else ResponsesParser(secret)
            if stream_format == "responses"
            else OpenAIParser(secret)
        )
        self._late = _LATE_EVENTS[stream_format]
        self._splitter = EventSplitter(max_event_bytes)
        self.content = False  # a text, thinking or tool event came
        self.failure: UpstreamFailure | None = None  # an error event came
        self._early = False  # it came before any content
        self.usage: Usage | None = None
        self.done = False  # the message ended as the provider's format says
        self.blind = False  # stopped looking: garbage, an overflow, or after an error

    @property
    def decided(self) -> bool:
        """Whether holding the response any longer could change what to do with it."""
        return self.content or self.done or self.blind

    @property
    def early_failure(self) -> UpstreamFailure | None:
        """The error event (or cut-short end) that came before any content, if one did:
        the answer may be replayed, whatever chunks the bytes came in."""
        return self.failure if self._early else None

    def feed(self, chunk: bytes) -> None:
        if self.blind:
            return
        run = self._splitter.feed(chunk)
        if self._splitter.overflow:
            self.blind = True
            return
        if not run:
            return
        at = 0
        while not self.content:  # every event is decoded until the first content event
            end = run.find(b"\n\n", at)
            end = len(run) if end < 0 else end
            if not self._event(run[at:end]) or end == len(run):
                return
            at = end + 2
        if at:
            run = run[at:]  # what came with the first content event, once a stream
        # The answer has begun: only the events a byte search points at are decoded.
        hits = sorted({m.start() for search in self._late for m in search.finditer(run)})
        after = 0  # where the last decoded event ended
        for hit in hits:
            if hit < after:
                continue  # in an event decoded already
            start = run.rfind(b"\n\n", 0, hit) + 1  # 0, or at the blank line before it
            end = run.find(b"\n\n", hit)
            end = len(run) if end < 0 else end
            if not self._event(run[start:end]):
                return
            after = end

    def _event(self, event: bytes) -> bool:
        """Hand one event to the parser; False once there is nothing left to look for."""
        name, data = decode(event)
        try:
            deltas = self._parser.feed(name, data)
        except UpstreamFailure as exc:
            # A malformed event is the host's garbage, not a verdict on the key.
            if exc.failure.error_type != "malformed_stream":
                self.failure = exc
                self._early = not self.content
            self.blind = True
            return False
        for delta in deltas:
            if isinstance(delta, UsageDelta):
                self.usage = delta.usage
            elif isinstance(delta, MessageEnd):
                self.done = True
                self.content = True
                self.usage = delta.message.usage
            else:
                self.content = True
        if self._parser.done:
            self.done = True
            self.blind = True
            return False
        return True

    def eof(self) -> None:
        """The body ended: a stream cut short (or without a content event) is a failure."""
        if self.done or self.blind:
            return
        try:
            for delta in self._parser.eof():
                if isinstance(delta, MessageEnd):
                    self.done = True
                    self.usage = delta.message.usage
        except UpstreamFailure as exc:
            self.failure = exc
            self._early = not self.content
        self.blind = True
