"""The one place where deltas become the final message.

Both providers feed every delta they yield into a :class:`MessageBuilder` and end the
stream with ``MessageEnd(builder.build(stop_reason))``, so the engine gets the final
content blocks, usage and stop reason without re-deriving them, and both wire flavours
agree on what a "message" is. The engine may also run its own builder over the deltas
it forwarded (e.g. to report partial output); it gets the same blocks, except for
``redacted_thinking``, which has no delta kind and only reaches the builder through
:meth:`MessageBuilder.redacted_thinking`.
"""

from __future__ import annotations

import json
from typing import Any

from sidecar.providers._types import (
    Delta,
    Message,
    SignatureDelta,
    TextDelta,
    ThinkingDelta,
    ToolInputDelta,
    ToolUseStart,
    ToolUseStop,
    Usage,
    UsageDelta,
)

__all__ = ["MessageBuilder", "parse_tool_input"]


def parse_tool_input(raw: str) -> dict[str, Any]:
    """The tool input object from its concatenated JSON fragments.

    Empty means no arguments (Anthropic streams a tool without parameters as nothing).
    Anything that is not a JSON object (truncated by max_tokens, a host's bug) is kept
    verbatim under ``_raw`` rather than raised: the rest of the answer is still good,
    and the editor can show the tool call as it came.
    """
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return {"_raw": raw}
    return value if isinstance(value, dict) else {"_raw": raw}


class MessageBuilder:
    """Accumulates deltas into content blocks, usage and (at :meth:`build`) a stop reason.

    Block boundaries: a text delta extends the last block if it is an open text block;
    a thinking delta extends an open thinking block that has no signature yet (the
    signature closes it, so two signed blocks in a row stay two); tool blocks are found
    by id, so interleaved tool calls reassemble correctly. :meth:`end_block` closes the
    current block, for wire formats that mark block ends (Anthropic).
    """

    def __init__(self) -> None:
        self._blocks: list[dict[str, Any]] = []
        self._tool_json: dict[str, list[str]] = {}
        self._open: dict[str, Any] | None = None  # the text or thinking block being extended
        self.usage = Usage()

    def add(self, delta: Delta) -> None:
        """Take one delta; :class:`MessageEnd` and unknown kinds are ignored."""
        if isinstance(delta, TextDelta):
            self._extend("text", "text", delta.text)
        elif isinstance(delta, ThinkingDelta):
            block = self._open
            if block is None or block["type"] != "thinking" or block["signature"]:
                block = self._start({"type": "thinking", "thinking": [], "signature": []})
            block["thinking"].append(delta.text)
        elif isinstance(delta, SignatureDelta):
            block = self._open
            if block is None or block["type"] != "thinking":
                # A signature with no thinking text (possible for an empty block).
                block = self._start({"type": "thinking", "thinking": [], "signature": []})
            block["signature"].append(delta.signature)
        elif isinstance(delta, ToolUseStart):
            self._open = None
            self._blocks.append({"type": "tool_use", "id": delta.id, "name": delta.name})
            self._tool_json[delta.id] = []
        elif isinstance(delta, ToolInputDelta):
            fragments = self._tool_json.get(delta.id)
            if fragments is not None:  # input for a tool never started has no block to go to
                fragments.append(delta.json)
        elif isinstance(delta, ToolUseStop):
            self._open = None
        elif isinstance(delta, UsageDelta):
            self.usage = delta.usage

    def redacted_thinking(self, data: str) -> None:
        """An encrypted thinking block: kept for the result, never shown as a delta."""
        self._start({"type": "redacted_thinking", "data": data})
        self._open = None

    def end_block(self) -> None:
        self._open = None

    def build(self, stop_reason: str) -> Message:
        """The message so far. Tool inputs are parsed here, from all their fragments."""
        content: list[dict[str, Any]] = []
        for block in self._blocks:
            if block["type"] == "tool_use":
                raw = "".join(self._tool_json.get(block["id"], ()))
                block = {**block, "input": parse_tool_input(raw)}
            else:  # text pieces are kept as lists while streaming: += would be quadratic
                block = {k: "".join(v) if isinstance(v, list) else v for k, v in block.items()}
            content.append(block)
        return Message(content=content, stop_reason=stop_reason, usage=self.usage)

    def _start(self, block: dict[str, Any]) -> dict[str, Any]:
        self._blocks.append(block)
        self._open = block
        return block

    def _extend(self, kind: str, field: str, text: str) -> None:
        block = self._open
        if block is None or block["type"] != kind:
            block = self._start({"type": kind, field: []})
        block[field].append(text)
