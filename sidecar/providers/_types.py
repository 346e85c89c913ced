"""The provider layer's vocabulary: the normalized request, the deltas, the final message.

Everything here is plain attrs data with no HTTP dependency, so the engine and the
server can name these types without importing httpx.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, Protocol

import attrs

if TYPE_CHECKING:
    import httpx

    from sidecar.credentials import Credential
    from sidecar.rotation.headroom import Window

__all__ = [
    "Delta",
    "Message",
    "MessageEnd",
    "Provider",
    "SignatureDelta",
    "StreamRequest",
    "TextDelta",
    "ThinkingDelta",
    "ToolInputDelta",
    "ToolUseStart",
    "ToolUseStop",
    "Usage",
    "UsageDelta",
]


@attrs.frozen
class StreamRequest:
    """One model request in the Anthropic Messages shape, whatever the provider.

    ``messages``: ``{role, content: str | blocks}`` with blocks ``text``, ``tool_use``,
    ``tool_result``, ``image``. ``system`` blocks may carry ``cache_control``; they are
    passed to Anthropic untouched. ``tools``: ``{name, description?, input_schema}``.
    """

    model: str
    messages: list[dict[str, Any]]
    max_tokens: int
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    thinking_budget: int | None = None
    temperature: float | None = None


@attrs.frozen
class Usage:
    """Token counts, Anthropic's way: ``input_tokens`` excludes cached tokens, which are
    counted in ``cache_read_tokens`` (served from the cache) and ``cache_write_tokens``
    (written to it). OpenAI-compatible counts are converted to this split."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


# --- deltas: what the editor sees, one class per `sidecar/streamDelta` kind -----------


@attrs.frozen
class TextDelta:
    text: str


@attrs.frozen
class ThinkingDelta:
    text: str


@attrs.frozen
class SignatureDelta:
    signature: str


@attrs.frozen
class ToolUseStart:
    id: str
    name: str


@attrs.frozen
class ToolInputDelta:
    id: str
    json: str  # a fragment of the input JSON; fragments concatenate


@attrs.frozen
class ToolUseStop:
    id: str


@attrs.frozen
class UsageDelta:
    usage: Usage  # cumulative counts so far, not an increment


@attrs.frozen
class Message:
    """The final assistant message, built by :class:`MessageBuilder`.

    ``content`` holds blocks in the Anthropic shape: ``{"type": "text", "text"}``,
    ``{"type": "thinking", "thinking", "signature"}``, ``{"type": "redacted_thinking",
    "data"}``, ``{"type": "tool_use", "id", "name", "input"}``.
    """

    content: list[dict[str, Any]]
    stop_reason: str
    usage: Usage

    @property
    def text(self) -> str:
        """The answer text: every text block, concatenated."""
        return "".join(b["text"] for b in self.content if b.get("type") == "text")


@attrs.frozen
class MessageEnd:
    """Always the last item of a successful stream, and only there: the whole message.

    Not forwarded to the editor as a delta; it is the `sidecar/stream` result's content.
    ``windows``: the rate-limit windows the answer's headers reported, for the key pool.
    """

    message: Message
    windows: tuple[Window, ...] = ()


Delta = (
    TextDelta
    | ThinkingDelta
    | SignatureDelta
    | ToolUseStart
    | ToolInputDelta
    | ToolUseStop
    | UsageDelta
    | MessageEnd
)


class Provider(Protocol):
    """One provider endpoint: turns a :class:`StreamRequest` into HTTP and the SSE reply
    into deltas."""

    @property
    def name(self) -> str: ...

    def stream(
        self, client: httpx.AsyncClient, request: StreamRequest, credential: Credential
    ) -> AsyncGenerator[Delta, None]:
        """Send the request and yield deltas as events arrive, ending with exactly one
        :class:`MessageEnd`. Raises :class:`UpstreamFailure` for an HTTP error, an error
        event, a transport error or a stream that ends early. Nothing is sent until the
        first ``anext``; ``aclose()`` (or cancelling the task) closes the upstream
        connection at once."""
        ...
