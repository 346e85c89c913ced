"""OpenAI's Responses API wire format (``POST /v1/responses``), beside chat completions.

Same keys, errors and headers as :mod:`sidecar.fake._openai`; what differs is the body
(``input`` instead of ``messages``) and the answer: typed events (``event:`` and a
``type`` in the data) that build output items (``message`` with ``output_text`` parts,
``reasoning`` with a summary, ``function_call`` with streamed ``arguments``), ending in
``response.completed`` with the usage; a failure mid-stream is an ``error`` event.
Clients that speak it: opencode's built-in ``openai`` provider, OpenAI's Codex CLI, the
SDKs' ``responses.create``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sidecar.fake._openai import _ERRORS, OpenAI
from sidecar.fake._render import Context, blocks, dumpb, now, pieces, stop_reason, tool_json, usage
from sidecar.fake._steps import Error, Reply, Text, Thinking, ToolUse

__all__ = ["Responses"]


def _event(kind: str, seq: int, fields: Mapping[str, Any]) -> bytes:
    return b"event: %b\ndata: %b\n\n" % (
        kind.encode(),
        dumpb({"type": kind, "sequence_number": seq, **fields}),
    )


class Responses(OpenAI):
    def check_fields(self, body: Mapping[str, Any]) -> Error | None:
        if body.get("input") is None:
            return Error("invalid_request_error", "Missing required parameter: 'input'.")
        return None

    def midstream_error(self, err_type: str, message: str) -> bytes:
        kind, code, _ = _ERRORS.get(err_type, (err_type, None, "Error"))
        fields = {"code": code or kind, "message": message, "param": None}
        return _event("error", 0, fields)

    @staticmethod
    def _usage_of(reply: Reply, ctx: Context, content: tuple[Any, ...]) -> dict[str, Any]:
        counts = usage(reply, ctx, content)
        # Like chat completions, input_tokens include the cached ones.
        prompt = counts.input + counts.cache_read + counts.cache_write
        return {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": counts.cache_read},
            "output_tokens": counts.output,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + counts.output,
        }

    @staticmethod
    def _items(content: tuple[Any, ...], no: int) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for index, block in enumerate(content):
            item_id = f"{no:06d}_{index}"
            if isinstance(block, Text):
                part = {"type": "output_text", "text": block.text, "annotations": []}
                items.append(
                    {"id": f"msg_{item_id}", "type": "message", "status": "completed",
                     "role": "assistant", "content": [part]}
                )  # fmt: skip
            elif isinstance(block, Thinking):
                summary = [{"type": "summary_text", "text": block.text}]
                items.append({"id": f"rs_{item_id}", "type": "reasoning", "summary": summary})
            elif isinstance(block, ToolUse):
                items.append(
                    {"id": f"fc_{item_id}", "type": "function_call", "status": "completed",
                     "call_id": block.id, "name": block.name, "arguments": tool_json(block)}
                )  # fmt: skip
        return items

    def _response(self, reply: Reply, ctx: Context, status: str) -> dict[str, Any]:
        content = blocks(reply, ctx)
        done = status != "in_progress"
        return {
            "id": f"resp_fake{ctx.no:06d}",
            "object": "response",
            "created_at": now(),
            "status": status,
            "model": ctx.model,
            "output": self._items(content, ctx.no) if done else [],
            "usage": self._usage_of(reply, ctx, content) if done else None,
            "incomplete_details": (
                {"reason": "max_output_tokens"}
                if stop_reason(reply, content) == "max_tokens"
                else None
            ),
        }

    def stream_events(self, reply: Reply, ctx: Context) -> list[bytes]:
        content = blocks(reply, ctx)
        events: list[bytes] = []

        def add(kind: str, **fields: Any) -> None:
            events.append(_event(kind, len(events), fields))

        start = self._response(reply, ctx, "in_progress")
        add("response.created", response=start)
        add("response.in_progress", response=start)
        for index, item in enumerate(self._items(content, ctx.no)):
            where = {"item_id": item["id"], "output_index": index}
            if item["type"] == "message":
                add("response.output_item.added", output_index=index, item={**item, "content": []})
                text = item["content"][0]["text"]
                add("response.content_part.added", **where, content_index=0,
                    part={"type": "output_text", "text": "", "annotations": []})  # fmt: skip
                for piece in pieces(text, reply.chunk):
                    add("response.output_text.delta", **where, content_index=0, delta=piece)
                add("response.output_text.done", **where, content_index=0, text=text)
                add("response.content_part.done", **where, content_index=0,
                    part=item["content"][0])  # fmt: skip
            elif item["type"] == "reasoning":
                add("response.output_item.added", output_index=index, item={**item, "summary": []})
                text = item["summary"][0]["text"]
                for piece in pieces(text, reply.chunk):
                    add("response.reasoning_summary_text.delta", **where, summary_index=0,
                        delta=piece)  # fmt: skip
                add("response.reasoning_summary_text.done", **where, summary_index=0, text=text)
            else:
                add("response.output_item.added", output_index=index,
                    item={**item, "arguments": "", "status": "in_progress"})  # fmt: skip
                for piece in pieces(item["arguments"], reply.chunk):
                    add("response.function_call_arguments.delta", **where, delta=piece)
                add("response.function_call_arguments.done", **where, arguments=item["arguments"])
            add("response.output_item.done", output_index=index, item=item)
        final = self._response(reply, ctx, "completed")
        if final["incomplete_details"] is not None:
            add("response.incomplete", response={**final, "status": "incomplete"})
        else:
            add("response.completed", response=final)
        return events

    def message(self, reply: Reply, ctx: Context) -> bytes:
        final = self._response(reply, ctx, "completed")
        if final["incomplete_details"] is not None:
            final["status"] = "incomplete"
        return dumpb(final)
