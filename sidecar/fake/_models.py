"""``GET /v1/models``: each flavour's model list, in the provider's own wire format.

Anthropic answers ``{"data": [{"type": "model", "id", "display_name", "created_at"}],
"has_more", "first_id", "last_id"}`` (newest first); OpenAI-compatible hosts answer
``{"object": "list", "data": [{"id", "object": "model", "created", "owned_by"}]}``.
The server routes any ``GET …/models`` here: a request carrying ``anthropic-version``
is Anthropic's, as on the real hosts, where only Anthropic requires that header.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ANTHROPIC_MODELS", "OPENAI_MODELS", "model_list"]

# (id, display name, created): dated ids, as the real list gives them.
ANTHROPIC_MODELS = (
    ("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z"),
    ("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-01T00:00:00Z"),
    ("claude-opus-4-1-20250805", "Claude Opus 4.1", "2025-08-05T00:00:00Z"),
)
OPENAI_MODELS = (
    ("gpt-4o-mini", "system", 1721172741),
    ("gpt-4o", "system", 1715367049),
    ("gpt-5", "system", 1754425777),
)


def model_list(anthropic: bool) -> dict[str, Any]:
    body: dict[str, Any]
    if anthropic:
        data = [
            {"type": "model", "id": i, "display_name": name, "created_at": created}
            for i, name, created in ANTHROPIC_MODELS
        ]
        body = {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"],
            "last_id": data[-1]["id"],
        }
    else:
        body = {
            "object": "list",
            "data": [
                {"id": i, "object": "model", "created": created, "owned_by": owner}
                for i, owner, created in OPENAI_MODELS
            ],
        }
    return body
