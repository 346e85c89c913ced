"""What one stream tells the face that asked for it: typed events, no wire format.

The engine hands every event of a request to the :class:`StreamSink` its caller
gives it, in order: the provider's deltas as they arrive (the types of
:mod:`sidecar.providers`), a :class:`Restart` when an answer that had begun is
replayed on another credential, a :class:`Fallback` when the requested provider
cannot answer and the user's fallback list sends the request elsewhere, and
:class:`Finished` with the final message and outcome, last. Each face renders them
its own way: the JSON-RPC face as ``sidecar/streamDelta`` notifications
(:mod:`sidecar.rpc.wire`, which merges neighbours and frames them), ``llm-sidecar
ask`` as terminal text. Nothing here
knows JSON-RPC, camelCase or framing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import attrs

from sidecar.providers._types import (
    Message,
    SignatureDelta,
    TextDelta,
    ThinkingDelta,
    ToolInputDelta,
    ToolUseStart,
    ToolUseStop,
    UsageDelta,
)

if TYPE_CHECKING:
    from sidecar.credentials import Credential
    from sidecar.pricing import Cost

__all__ = [
    "DISCARD",
    "Fallback",
    "Finished",
    "Restart",
    "StreamEvent",
    "StreamOutcome",
    "StreamSink",
]


@attrs.frozen
class Restart:
    """The deltas sent so far are void: attempt ``attempt`` starts the answer again."""

    attempt: int
    reason: str  # the provider's complaint that ended the previous attempt


@attrs.frozen
class Fallback:
    """The requested provider cannot answer: the answer now comes from ``provider``'s
    ``model``, a fallback the user listed. Deltas sent before it (if any) are void."""

    provider: str
    model: str
    reason: str  # why the previous provider could not answer, in its words
    from_provider: str  # what the request asked for
    from_model: str


@attrs.frozen
class StreamOutcome:
    """A stream that succeeded: the final message, who answered, what it cost."""

    model: str
    message: Message
    credential: Credential
    attempts: int
    cost: Cost
    fallback: Fallback | None = None  # set when a fallback answered, not the requested provider

    @property
    def provider(self) -> str:
        """The provider that answered."""
        return self.credential.provider


@attrs.frozen
class Finished:
    """The last event of a stream that succeeded (a failure raises instead)."""

    outcome: StreamOutcome


StreamEvent = (
    TextDelta
    | ThinkingDelta
    | SignatureDelta
    | ToolUseStart
    | ToolInputDelta
    | ToolUseStop
    | UsageDelta
    | Restart
    | Fallback
    | Finished
)


class StreamSink(Protocol):
    """Where the engine puts one stream's events."""

    def event(self, event: StreamEvent) -> None:
        """Take one event; must not block (buffer, or write without waiting)."""

    async def ready(self) -> None:
        """Return once the consumer can take more: a face whose reader is behind
        pauses the stream here (nothing more is read from the provider)."""


class _Discard:
    def event(self, event: StreamEvent) -> None:
        pass

    async def ready(self) -> None:
        pass


DISCARD: StreamSink = _Discard()  # for callers that want the outcome only
