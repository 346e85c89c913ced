"""Watching a provider's SSE bytes on the side, without altering them.

The gateway forwards the upstream bytes as they come; a copy goes through the same
parsers the sidecar's own requests use (:class:`AnthropicParser`,
:class:`OpenAIParser`), which tell whether the answer has begun (the first content
event), whether an ``error`` event came instead, and the usage (cache included).
"""

from __future__ import annotations

from sidecar.gateway._responses import ResponsesParser
from sidecar.providers import MessageEnd, UpstreamFailure, Usage, UsageDelta
from sidecar.providers._anthropic import AnthropicParser
from sidecar.providers._openai import OpenAIParser
from sidecar.providers._sse import Parser

__all__ = ["EventSplitter", "StreamWatch"]


class EventSplitter:
    """Raw SSE bytes → (event, data) pairs, fed in chunks cut anywhere.

    ``overflow`` turns True when one event grows past ``max_bytes``: the watcher then
    stops looking (the bytes still flow to the client; only the usage is lost).
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.overflow = False
        self._buffer = bytearray()
        self._event = ""
        self._data: list[str] = []
        self._size = 0

    def feed(self, chunk: bytes) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        self._buffer += chunk
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                break
            line = bytes(self._buffer[:end]).rstrip(b"\r").decode("utf-8", "replace")
            del self._buffer[: end + 1]
            self._line(line, out)
        if len(self._buffer) + self._size > self.max_bytes:
            self.overflow = True
            self._buffer.clear()
        return out

    def _line(self, line: str, out: list[tuple[str, str]]) -> None:
        if not line:
            if self._data:
                out.append((self._event or "message", "\n".join(self._data)))
            self._event, self._data, self._size = "", [], 0
            return
        if line.startswith(":"):
            return  # a comment (keep-alive)
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
            self._size += len(value)


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
        self._splitter = EventSplitter(max_event_bytes)
        self.content = False  # a text, thinking or tool event came
        self.failure: UpstreamFailure | None = None  # an error event came
        self.usage: Usage | None = None
        self.done = False  # the message ended as the provider's format says
        self.blind = False  # stopped looking: garbage, an overflow, or after an error

    @property
    def decided(self) -> bool:
        """Whether holding the response any longer could change what to do with it."""
        return self.content or self.done or self.blind

    def feed(self, chunk: bytes) -> None:
        if self.blind:
            return
        events = self._splitter.feed(chunk)
        if self._splitter.overflow:
            self.blind = True
            return
        for event, data in events:
            try:
                deltas = self._parser.feed(event, data)
            except UpstreamFailure as exc:
                # A malformed event is the host's garbage, not a verdict on the key.
                if exc.failure.error_type != "malformed_stream":
                    self.failure = exc
                self.blind = True
                return
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
                return

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
        self.blind = True
