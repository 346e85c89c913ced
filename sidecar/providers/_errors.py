"""How the provider layer fails: one exception type for everything upstream."""

from __future__ import annotations

import attrs

from sidecar.fingerprints import redact
from sidecar.rotation.classify import Failure, FailureClass

__all__ = [
    "ProviderConfigError",
    "UpstreamFailure",
    "attempt_timed_out",
    "is_transient",
    "local_failure",
    "malformed_stream",
    "redacted",
    "response_too_large",
    "stream_ended_early",
    "transport_failure",
    "unsendable_credential",
]


class ProviderConfigError(ValueError):
    """The environment does not describe a usable endpoint (e.g. Azure without a resource)."""


class UpstreamFailure(Exception):
    """The provider refused or broke off a request.

    ``failure`` is what :func:`sidecar.rotation.classify.parse_failure` made of the answer.
    ``mid_stream`` is True when the provider had already answered 2xx (deltas may have
    gone out). ``retryable`` marks REQUEST-class failures that are nobody's fault: a
    dropped connection, a stream cut short, a 5xx or 408, an ``api_error`` event. The
    request may be replayed (on the same credential, or the next) without cooling any
    credential down. Their class is REQUEST, deliberately not RATE_LIMIT: a network
    blip says nothing about the key, and cooling a healthy key down for it would push
    the user onto worse keys.
    """

    def __init__(
        self, failure: Failure, *, mid_stream: bool, retryable: bool | None = None
    ) -> None:
        super().__init__(failure.message)
        self.failure = failure
        self.mid_stream = mid_stream
        self.retryable = is_transient(failure) if retryable is None else retryable

    def __repr__(self) -> str:
        f = self.failure
        return (
            f"UpstreamFailure({f.failure_class.name}, status={f.status}, "
            f"type={f.error_type!r}, message={f.message!r}, mid_stream={self.mid_stream})"
        )


# Server-side trouble that says nothing about the request or the key. 529 and
# "overloaded" are not here: classify() already makes them RATE_LIMIT.
_TRANSIENT_STATUSES = frozenset({408, 500, 502, 503, 504})
_TRANSIENT_TYPES = frozenset({"api_error", "server_error", "timeout"})


def is_transient(failure: Failure) -> bool:
    """A REQUEST-class failure worth replaying: a server error or timeout, not a bad
    request. (Rate limits, auth and scope have their own handling.)"""
    if failure.failure_class is not FailureClass.REQUEST:
        return False
    return failure.status in _TRANSIENT_STATUSES or failure.error_type in _TRANSIENT_TYPES


def redacted(failure: Failure, secret: str) -> Failure:
    """``failure`` with ``secret`` (and any piece of it) replaced by its fingerprint.

    Providers echo keys back ("Incorrect API key provided: sk-…"); most mask them, but
    an exception message must never depend on a provider's discretion. parse_failure
    already redacts before it cuts the message; this is the last line for every other
    failure that carries upstream text.
    """
    message = redact(failure.message, [secret])
    return failure if message == failure.message else attrs.evolve(failure, message=message)


def local_failure(error_type: str, message: str, status: int | None = None) -> Failure:
    """A REQUEST-class failure the sidecar itself observed (no provider error body)."""
    return Failure(
        failure_class=FailureClass.REQUEST,
        status=status,
        error_type=error_type,
        message=message,
        retry_at=None,
        billing=False,
    )


def stream_ended_early(*, mid_stream: bool = True) -> UpstreamFailure:
    return UpstreamFailure(
        local_failure("stream_ended", "stream ended early"), mid_stream=mid_stream, retryable=True
    )


def malformed_stream(detail: str) -> UpstreamFailure:
    # Not retryable: a host that sends garbage will most likely send it again.
    return UpstreamFailure(
        local_failure("malformed_stream", f"malformed stream: {detail}"), mid_stream=True
    )


def response_too_large(message: str, *, mid_stream: bool, status: int | None) -> UpstreamFailure:
    """A response past the sidecar's limits (an endless SSE line, a decompression bomb).

    Not retryable: the host would send it again, and each replay costs the limit in
    CPU. REQUEST class, so no credential is cooled down or rotated away from: what the
    host sends says nothing about the key.
    """
    return UpstreamFailure(
        local_failure("response_too_large", message, status),
        mid_stream=mid_stream,
        retryable=False,
    )


def _timeout_setting(exc: BaseException, name: str) -> float | None:
    """The timeout httpx applied to the failed request (``connect``, ``read``, …)."""
    try:
        value = exc.request.extensions["timeout"][name]  # type: ignore[attr-defined]
    except (AttributeError, KeyError, TypeError, RuntimeError):
        return None
    return float(value) if isinstance(value, int | float) else None


# aiohttp's names (the gateway's client) for what httpx calls these.
_AIOHTTP_KINDS = {
    "ConnectionTimeoutError": "ConnectTimeout",
    "SocketTimeoutError": "ReadTimeout",
    "ServerTimeoutError": "ReadTimeout",
    "ClientConnectorError": "ConnectError",
    "ClientConnectorDNSError": "ConnectError",
    "ServerDisconnectedError": "RemoteProtocolError",
    "ClientPayloadError": "RemoteProtocolError",
}


def _transport_text(exc: BaseException) -> str:
    """What went wrong with the connection, in words a user can act on."""
    name = type(exc).__name__
    kind = _AIOHTTP_KINDS.get(name, name)
    detail = str(exc).strip()
    if kind in ("ConnectTimeout", "ReadTimeout", "WriteTimeout", "PoolTimeout"):
        phase = kind.removesuffix("Timeout").lower()
        limit = _timeout_setting(exc, phase)
        waited = f" for {limit:g} s" if limit is not None else ""
        what = {
            "connect": f"no connection to the provider{waited}",
            "read": f"the provider sent nothing{waited}",
            "write": f"the request could not be sent{waited}",
            "pool": f"no free connection{waited}",
        }[phase]
        return f"network error ({kind}): {what} ({phase} timeout)"
    if kind == "ConnectError":
        return f"network error (ConnectError): cannot connect to the provider: {detail or kind}"
    if kind in ("RemoteProtocolError", "ReadError"):
        return f"network error ({kind}): the connection broke off: {detail or 'no detail'}"
    return f"network error ({kind}): {detail or 'no detail'}"


def transport_failure(exc: BaseException, secret: str, *, mid_stream: bool) -> UpstreamFailure:
    """A connection that failed or dropped (httpx.TransportError, aiohttp.ClientError)."""
    message = redact(_transport_text(exc), [secret])
    return UpstreamFailure(
        local_failure("network_error", message[:300]), mid_stream=mid_stream, retryable=True
    )


def attempt_timed_out(total: float, *, mid_stream: bool) -> UpstreamFailure:
    """An attempt that outlived the total timeout (``LLM_SIDECAR_TOTAL_TIMEOUT``).

    Not retryable: a provider that trickles for that long will likely do it again, and
    the user has waited long enough. REQUEST class, so no credential is cooled down.
    """
    message = f"no complete answer within {total:g} s (total timeout)"
    return UpstreamFailure(
        local_failure("total_timeout", message), mid_stream=mid_stream, retryable=False
    )


def unsendable_credential() -> UpstreamFailure:
    """A secret that cannot travel in an HTTP header (non-ASCII or control characters).

    It can never work, so it is an AUTH failure: a pooled key is evicted and the request
    goes on with the next credential, instead of an internal error on every request.
    """
    failure = Failure(
        failure_class=FailureClass.AUTH,
        status=None,
        error_type="invalid_credential",
        message=(
            "the credential holds characters that cannot be sent in an HTTP header "
            "(not printable ASCII): it was mistyped or pasted with extra characters"
        ),
        retry_at=None,
        billing=False,
    )
    return UpstreamFailure(failure, mid_stream=False, retryable=False)
