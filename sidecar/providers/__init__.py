"""The provider layer: a normalized request in, HTTP + SSE out, normalized deltas back.

Usage (the engine)::

    provider = get_provider("anthropic", env)
    async with aclosing(provider.stream(client, request, credential)) as deltas:
        async for delta in deltas:
            if isinstance(delta, MessageEnd):
                message = delta.message      # content blocks, stop_reason, usage
            else:
                forward(delta)               # one `sidecar/streamDelta` each

A stream yields the editor-visible deltas in order and ends with exactly one
:class:`MessageEnd`; every failure (HTTP status, error event, dropped connection, early
end) is an :class:`UpstreamFailure`. Both flavours build the final message with the
same :class:`MessageBuilder`.

Importing this package does not import httpx: the flavour modules load on the first
:func:`get_provider`.
"""

from sidecar.providers._config import get_provider, parse_deployment_map
from sidecar.providers._errors import ProviderConfigError, UpstreamFailure, attempt_timed_out
from sidecar.providers._message import MessageBuilder, parse_tool_input
from sidecar.providers._types import (
    Delta,
    Message,
    MessageEnd,
    Provider,
    SignatureDelta,
    StreamRequest,
    TextDelta,
    ThinkingDelta,
    ToolInputDelta,
    ToolUseStart,
    ToolUseStop,
    Usage,
    UsageDelta,
)

__all__ = [
    "Delta",
    "Message",
    "MessageBuilder",
    "MessageEnd",
    "Provider",
    "ProviderConfigError",
    "SignatureDelta",
    "StreamRequest",
    "TextDelta",
    "ThinkingDelta",
    "ToolInputDelta",
    "ToolUseStart",
    "ToolUseStop",
    "UpstreamFailure",
    "Usage",
    "UsageDelta",
    "attempt_timed_out",
    "get_provider",
    "parse_deployment_map",
    "parse_tool_input",
]
