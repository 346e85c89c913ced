"""A scriptable local stand-in for the providers' HTTP APIs.

It speaks the real wire formats on 127.0.0.1: the Anthropic Messages API
(``POST /v1/messages``) and OpenAI-compatible chat completions
(``POST /v1/chat/completions``, ``/chat/completions``, Azure's
``/openai/deployments/<name>/chat/completions``), streamed as chunked SSE or whole as
JSON, with the providers' error bodies and rate-limit headers; OpenAI's Responses API
(``POST /v1/responses``, its typed events; see :mod:`sidecar.fake._responses`); also
``GET …/models``
(Anthropic's listing for a request with ``anthropic-version``, else OpenAI's; see
:mod:`sidecar.fake._models`) and
``POST /v1/messages/count_tokens``, which take the same per-key script steps (a Reply
step answers in that endpoint's format). Standard library only.

Scripting, per credential (the API key or bearer token a request carries)::

    from sidecar.fake import FakeProvider, Reply, Text, ToolUse, RateLimited, Overloaded

    with FakeProvider(keys=["sk-ant-good"]) as fake:
        fake.script(
            "sk-ant-busy",
            [RateLimited(retry_after=30), Overloaded()],   # one step per request...
            default=Reply([Text("Hi!"), ToolUse("toolu_1", "read", {"path": "a.py"})]),
        )                                                  # ...then the default, forever
        client = anthropic.Anthropic(api_key="sk-ant-busy", base_url=fake.url)
        fake.wait_for(lambda: len(fake.requests) == 3, timeout=2)

Keys never scripted get 401. The default step is :class:`Reply` with no content: a short
text naming the model and the length of the last user message.

Steps:

- ``Reply(content, stop_reason, usage, chunk, ...)``: content blocks ``Text``,
  ``Thinking(text, signature)``, ``RedactedThinking(data)``, ``ToolUse(id, name, input)``;
  ``usage=Usage(input, output, cache_read, cache_write)``; ``chunk`` characters per
  delta (default: about three words). Stream faults: ``error_after=K`` (a mid-stream
  ``error`` event, overloaded_error unless ``error_type``/``error_message`` say
  otherwise), ``drop_after=K`` (close the connection), ``stall=S, stall_after=K``
  (``stall_after=0``: before the status line), ``interval=S`` (a pause after every
  HTTP chunk). K counts SSE events on the wire. ``split`` cuts the SSE byte stream into
  HTTP chunks anywhere, even inside a UTF-8 character: None (one chunk per event), a
  size, ``"random"`` (1..64 bytes, with ``seed``), or a list of sizes used in turn.
  ``echo_key=True``: ``{key}`` in ``error_message`` becomes the request's key.
  Hostile tails: ``endless_after=K`` (after K events, until the client hangs up: a text
  delta whose line never ends, or with ``endless="events"`` pings/comments forever);
  ``gzip=True`` sends the stream gzip-compressed, with an endless tail a decompression
  bomb (about 1 KiB on the wire per MiB).
- ``Error(type, message, status, headers, code, body, content_type, retry_after,
  reset_in, stall, windows, clock_skew, echo_key)``: rendered per endpoint; ``type`` in
  Anthropic's names (rate_limit_error, overloaded_error, authentication_error,
  api_error, ...), mapped to OpenAI's type and code on the OpenAI endpoints. Every error
  has a ``Date``; ``reset_in`` reports a spent requests window and ``windows`` more
  (``{"tokens": Window(remaining=149984, reset_in=360)}``) in the flavour's rate-limit
  headers; ``clock_skew`` puts the ``Date`` and absolute resets on a provider clock that
  is off. Shorthands: ``RateLimited(retry_after, reset_in)``, ``Overloaded()``,
  ``InvalidKey()``, ``ScopeRefused(status=400)``, ``ProxyErrorPage(status=502)`` (an
  HTML body), ``GoogleQuotaExceeded(retry_delay=20)`` (Gemini's 429 with RetryInfo),
  ``OutOfCredit()`` (Anthropic's "credit balance is too low"; OpenAI's is
  ``Error("insufficient_quota")``), ``ExtraUsageRequired()`` (a subscription's
  third-party requests now drawing from extra usage).
- ``Reply(..., headers={...})`` adds response headers to a success, e.g. rate-limit
  windows (``anthropic-ratelimit-requests-remaining: 0``).
  ``echo_key=True``: ``{key}`` in the message (or a text body) becomes the request's
  key, as a provider quoting it back.
- ``Reply(..., content_parts=True)`` on the OpenAI endpoints: ``delta.content`` as a
  list of typed text and thinking parts, as Mistral's reasoning models send it.
- ``Drop(stall=0)``: close the connection without any answer.

The same steps as JSON, for tests in other processes: an object with a ``kind`` (reply,
error, drop, rate_limited, overloaded, invalid_key, scope_refused, proxy_error) and the
constructor's keyword arguments (also google_quota_exceeded, out_of_credit,
extra_usage_required); content blocks in the
Anthropic shape, e.g.
``{"kind": "reply", "content": [{"type": "text", "text": "Hi"}], "chunk": 2}``.

Control endpoints: ``POST /_fake/script`` ``{"key", "steps", "default"?}`` (or a list
of them), ``POST /_fake/reset``, ``GET /_fake/log`` (requests and events, every key
replaced by its fingerprint). As a process: ``python -m sidecar.fake [--port 0]
[--script FILE.json] [--key K ...]`` prints ``{"url": "http://127.0.0.1:PORT"}`` and
serves until SIGTERM or SIGINT.

Rate limits: ``FakeProvider(limits=RateLimits(requests=50, input_tokens=30000,
output_tokens=8000, period=6), overload=Overload(every=10, length=1))`` gives every key
(or ``limits={key: ..., None: ...}`` each key) token buckets as the providers define them,
and every response of such a key carries the headers computed from them (429 with
``retry-after`` when a bucket is short; ``per_model=True``: buckets per model class or
model, ``unified=True``: a subscription's unified headers); ``fake.ratelimit``
reconfigures them, as do
``POST /_fake/ratelimit`` ``{"key"?, "limits"?, "overload"?}`` and the process's
``--rate-limit requests=50,period=6`` and ``--overload every=10,length=1``. Semantics and
sources: :mod:`sidecar.fake._ratelimit`.

OAuth: the fake is also Anthropic's authorization server (``GET /oauth/authorize``,
``GET /oauth/code/callback``, ``POST /v1/oauth/token``); tokens it issues are accepted by
``/v1/messages``. ``fake.oauth`` scripts it (failures, delay, single-use refresh tokens,
a refresh counter) and ``fake.oauth_env()`` points a sidecar at it; see
:mod:`sidecar.fake._oauth` for the endpoints and their JSON control (``/_fake/oauth``).

Observing: ``fake.requests`` (:class:`RecordedRequest`), ``fake.events``
(:class:`Event` such as ``("connection_closed", request_no, events_written)``),
``fake.wait_for(predicate, timeout)`` and ``await fake.wait_for_async(...)``. With
``FakeProvider(timestamps=True)`` each streamed event's ``time.perf_counter_ns()`` is
kept in ``RecordedRequest.write_ns``.
"""

from sidecar.fake._oauth import OAuthState, TokenFailure, TokenPair
from sidecar.fake._presets import (
    CREDIT_MESSAGE,
    EXTRA_USAGE_MESSAGE,
    SCOPE_MESSAGE,
    ExtraUsageRequired,
    GoogleQuotaExceeded,
    InvalidKey,
    OutOfCredit,
    Overloaded,
    ProxyErrorPage,
    RateLimited,
    ScopeRefused,
)
from sidecar.fake._provider import FakeProvider
from sidecar.fake._ratelimit import Overload, RateLimiter, RateLimits
from sidecar.fake._script import Script, parse_script, parse_step
from sidecar.fake._state import Event, RecordedRequest, fingerprint
from sidecar.fake._steps import (
    Block,
    Drop,
    Error,
    RedactedThinking,
    Reply,
    Split,
    Step,
    Text,
    Thinking,
    ToolUse,
    Usage,
    Window,
)

__all__ = [
    "CREDIT_MESSAGE",
    "EXTRA_USAGE_MESSAGE",
    "SCOPE_MESSAGE",
    "Block",
    "Drop",
    "Error",
    "Event",
    "ExtraUsageRequired",
    "FakeProvider",
    "GoogleQuotaExceeded",
    "InvalidKey",
    "OAuthState",
    "OutOfCredit",
    "Overload",
    "Overloaded",
    "ProxyErrorPage",
    "RateLimited",
    "RateLimiter",
    "RateLimits",
    "RecordedRequest",
    "RedactedThinking",
    "Reply",
    "ScopeRefused",
    "Script",
    "Split",
    "Step",
    "Text",
    "Thinking",
    "TokenFailure",
    "TokenPair",
    "ToolUse",
    "Usage",
    "Window",
    "fingerprint",
    "parse_script",
    "parse_step",
]
