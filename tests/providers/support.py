"""Wire builders and an httpx MockTransport that streams a body in arbitrary pieces."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

import httpx

from sidecar.credentials import Credential, Kind
from sidecar.providers import Delta, MessageEnd, Provider, StreamRequest


def cred(secret: str, kind: Kind = "api_key", provider: str = "anthropic") -> Credential:
    return Credential(
        id=f"{provider}:test", provider=provider, kind=kind, source="pool", secret=secret
    )


def request(**overrides: Any) -> StreamRequest:
    fields: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": "Hello"}],
        "max_tokens": 64,
    }
    fields.update(overrides)
    return StreamRequest(**fields)


def sse(event: str | None, data: object) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def anthropic_events(
    blocks: Sequence[dict[str, Any]],
    *,
    stop_reason: str = "end_turn",
    usage: dict[str, int] | None = None,
    delta_usage: dict[str, int] | None = None,
    stop: bool = True,
) -> bytes:
    """A whole Anthropic stream. ``blocks``: {"type": "text", "text"} (one delta per
    item of ``pieces`` if given), thinking (+signature), redacted_thinking, tool_use
    with ``json`` pieces."""
    start_usage = usage or {"input_tokens": 10, "output_tokens": 1}
    out = [
        sse(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "role": "assistant",
                    "content": [],
                    "usage": start_usage,
                },
            },
        ),
        sse("ping", {"type": "ping"}),
    ]
    for index, block in enumerate(blocks):
        kind = block["type"]

        def delta(d: dict[str, Any], index: int = index) -> None:
            out.append(
                sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": d},
                )
            )

        if kind == "text":
            start: dict[str, Any] = {"type": "text", "text": ""}
        elif kind == "thinking":
            start = {"type": "thinking", "thinking": "", "signature": ""}
        elif kind == "redacted_thinking":
            start = {"type": "redacted_thinking", "data": block["data"]}
        else:
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        out.append(
            sse(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            )
        )
        if kind == "text":
            for piece in block.get("pieces", [block.get("text", "")]):
                delta({"type": "text_delta", "text": piece})
        elif kind == "thinking":
            for piece in block.get("pieces", [block.get("thinking", "")]):
                delta({"type": "thinking_delta", "thinking": piece})
            delta({"type": "signature_delta", "signature": block["signature"]})
        elif kind == "tool_use":
            for piece in ["", *block["json"]]:
                delta({"type": "input_json_delta", "partial_json": piece})
        out.append(sse("content_block_stop", {"type": "content_block_stop", "index": index}))
    out.append(
        sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": delta_usage or {"output_tokens": 5},
            },
        )
    )
    if stop:
        out.append(sse("message_stop", {"type": "message_stop"}))
    return b"".join(out)


def openai_chunk(
    delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any
) -> bytes:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "gpt-4o",
    }
    body["choices"] = (
        [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    )
    body.update(extra)
    return sse(None, body)


DONE = b"data: [DONE]\n\n"


class Pieces(httpx.AsyncByteStream):
    def __init__(self, pieces: Iterable[bytes]) -> None:
        self.pieces = list(pieces)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece


def split_at(body: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = sorted({c for c in cuts if 0 < c < len(body)})
    bounds = [0, *points, len(body)]
    return [body[a:b] for a, b in itertools.pairwise(bounds)]


Handler = Callable[[httpx.Request], httpx.Response]


def streaming(
    body: bytes,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    cuts: Iterable[int] = (),
    content_type: str = "text/event-stream",
    seen: list[httpx.Request] | None = None,
) -> httpx.AsyncClient:
    """A client whose every request gets ``body``, cut into HTTP chunks at ``cuts``."""

    def handler(req: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(req)
        all_headers = {"content-type": content_type, **(headers or {})}
        return httpx.Response(status, headers=all_headers, stream=Pieces(split_at(body, cuts)))

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def collect(
    provider: Provider, client: httpx.AsyncClient, req: StreamRequest, c: Credential
) -> list[Delta]:
    return [d async for d in provider.stream(client, req, c)]


def end_of(deltas: list[Delta]) -> MessageEnd:
    assert isinstance(deltas[-1], MessageEnd), deltas[-1]
    assert sum(isinstance(d, MessageEnd) for d in deltas) == 1
    return deltas[-1]
