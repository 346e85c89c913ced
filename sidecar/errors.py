"""The errors llm-sidecar reports, each with its JSON-RPC error code.

One small hierarchy used everywhere (store, rotation, engine, CLI). The
server turns a ``SidecarError`` into a JSON-RPC error with the same code,
message and data; the CLI prints the message. Messages and data never hold a
secret: only fingerprints.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AllRateLimited",
    "BudgetExceeded",
    "CredentialRejected",
    "InvalidParams",
    "LoginError",
    "NoCredentials",
    "SidecarError",
    "StoreError",
    "UpstreamError",
]


class SidecarError(Exception):
    """Base class. ``code`` is the JSON-RPC error code sent to the client."""

    code: int = -32000

    def __init__(self, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class InvalidParams(SidecarError):
    """A request's params are missing, of the wrong type or out of range."""

    code = -32602

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"invalid params: {field}: {problem}", {"field": field})
        self.field = field


class NoCredentials(SidecarError):
    """The provider has no usable credential at all."""

    code = -32001


class AllRateLimited(SidecarError):
    """Every credential of the provider is cooling down; ``retry_at``: the earliest end."""

    code = -32002

    def __init__(self, message: str, data: dict[str, Any], retry_at: float) -> None:
        super().__init__(message, data)
        self.retry_at = retry_at


class CredentialRejected(SidecarError):
    """The provider rejected every credential it was offered (invalid, or refused for its scope)."""

    code = -32003


class UpstreamError(SidecarError):
    """The provider answered with an error that rotation does not handle (e.g. 400, 404)."""

    code = -32004


class LoginError(SidecarError):
    """An OAuth login or token refresh failed."""

    code = -32005


class StoreError(SidecarError):
    """A file in the sidecar's home could not be read or written."""

    code = -32006


class BudgetExceeded(SidecarError):
    """The provider's daily budget is spent; ``resets_at``: when the next day begins."""

    code = -32007

    def __init__(self, message: str, data: dict[str, Any], resets_at: float) -> None:
        super().__init__(message, data)
        self.resets_at = resets_at
