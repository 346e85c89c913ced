"""Anthropic-shaped messages and tools → OpenAI chat completions shapes.

The editor speaks the Anthropic Messages shapes to every provider (docs/protocol.md);
this is the one translation for OpenAI-compatible hosts. What has no counterpart is
dropped, not guessed at: thinking and redacted_thinking blocks (their signatures mean
nothing to another host), ``cache_control``, and block types other than text, image,
tool_use and tool_result.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

__all__ = ["to_openai_messages", "to_openai_tools"]


def _blocks(content: object) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [b for b in content if isinstance(b, dict)]
    return []


def _text_of(blocks: Iterable[dict[str, Any]]) -> str:
    # Anthropic text blocks are separate paragraphs of one turn.
    return "\n\n".join(b["text"] for b in blocks if isinstance(b.get("text"), str))


def _image_part(block: dict[str, Any]) -> dict[str, Any] | None:
    source = block.get("source")
    if not isinstance(source, dict):
        return None
    if source.get("type") == "base64":
        media_type, data = source.get("media_type"), source.get("data")
        if isinstance(media_type, str) and isinstance(data, str):
            return {"type": "image_url", "image_url": {"url": f"data:{media_type};base64,{data}"}}
    elif source.get("type") == "url" and isinstance(source.get("url"), str):
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    return None


def _system_message(system: str | list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    if system is None:
        return []
    text = system if isinstance(system, str) else _text_of(_blocks(system))
    return [{"role": "system", "content": text}] if text else []


def _user_messages(content: object) -> list[dict[str, Any]]:
    """One Anthropic user turn → tool messages first, then a user message if anything
    else is left. OpenAI requires the tool messages right after the assistant message
    that made the calls, so they cannot come after the user's text."""
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []  # text and image_url parts of the user message
    for block in _blocks(content):
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            if (image := _image_part(block)) is not None:
                parts.append(image)
        elif kind == "tool_result":
            inner = _blocks(block.get("content"))
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": str(block.get("tool_use_id", "")),
                    "content": _text_of(b for b in inner if b.get("type") == "text"),
                }
            )
            # A tool message holds text only: images a tool returned travel in the user
            # message that follows, which is where the model can still see them.
            parts += [p for b in inner if b.get("type") == "image" and (p := _image_part(b))]
    if parts:
        if all(p["type"] == "text" for p in parts):
            # A plain string is what every compatible host accepts.
            out.append({"role": "user", "content": _text_of(parts)})
        else:
            out.append({"role": "user", "content": parts})
    return out


def _assistant_message(content: object) -> dict[str, Any]:
    blocks = _blocks(content)
    text = _text_of(b for b in blocks if b.get("type") == "text")
    calls = [
        {
            "id": str(b.get("id", "")),
            "type": "function",
            "function": {
                "name": str(b.get("name", "")),
                "arguments": json.dumps(b.get("input") or {}, ensure_ascii=False),
            },
        }
        for b in blocks
        if b.get("type") == "tool_use"
    ]
    message: dict[str, Any] = {"role": "assistant"}
    if calls:
        # null rather than "" beside tool calls: some hosts reject an empty string there.
        message["content"] = text or None
        message["tool_calls"] = calls
    else:
        message["content"] = text
    return message


def to_openai_messages(
    system: str | list[dict[str, Any]] | None, messages: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The chat completions ``messages`` for an Anthropic ``system`` and ``messages``."""
    out = _system_message(system)
    for message in messages:
        role = message.get("role")
        content = message.get("content")
        if role == "assistant":
            out.append(_assistant_message(content))
        elif role == "system":
            # Not in Anthropic's shape, but unambiguous if an editor sends it.
            out += _system_message(content if isinstance(content, str) else _blocks(content))
        else:
            out += _user_messages(content)
    return out


def to_openai_tools(tools: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for tool in tools:
        function: dict[str, Any] = {"name": tool.get("name", "")}
        if tool.get("description"):
            function["description"] = tool["description"]
        function["parameters"] = tool.get("input_schema") or {"type": "object", "properties": {}}
        out.append({"type": "function", "function": function})
    return out
