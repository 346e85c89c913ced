"""What one request's attempts ran into, and the error it ends with when none is left.

When rotation runs out of credentials, the pool's own error describes the pool
as it is now (``all 1 credential rate limited`` after the other one was evicted
by this very request), not what happened. The request's answer is instead the
last attempt's error, with a message that counts the credentials this request
really tried and what each said: ``2 anthropic credentials tried (1 rate
limited, 1 rejected as invalid); the last answered 401: invalid x-api-key``.
"""

from __future__ import annotations

import time
from collections import Counter

from sidecar.credentials import Credential
from sidecar.errors import (
    AllRateLimited,
    CredentialRejected,
    LoginError,
    SidecarError,
    UpstreamError,
)
from sidecar.rotation.classify import Failure, FailureClass
from sidecar.rotation.rules import SCOPE_ADVICE, retry_at_text

__all__ = ["Tally"]

_WORDS = {
    FailureClass.RATE_LIMIT: "rate limited",
    FailureClass.AUTH: "rejected as invalid",
    FailureClass.SCOPE: "refused for its scope",
}


class Tally:
    """The outcome of each credential one request tried, in the order they came."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self._outcomes: dict[str, str] = {}  # state key -> what it last ran into
        self.last: Failure | LoginError | None = None

    def failed(self, cred: Credential, failure: Failure) -> None:
        word = _WORDS.get(failure.failure_class, "failed")
        if failure.failure_class is FailureClass.RATE_LIMIT and failure.billing:
            word = "out of credit"
        self._record(cred, word, failure)

    def login_failed(self, cred: Credential, err: LoginError) -> None:
        self._record(cred, "a login that could not be renewed", err)

    def _record(self, cred: Credential, word: str, what: Failure | LoginError) -> None:
        self._outcomes.pop(cred.state_key, None)  # re-inserted: the order is the last one's
        self._outcomes[cred.state_key] = word
        self.last = what

    def give_up(self, exc: SidecarError) -> SidecarError:
        """The error for this request, now that the pool raised ``exc`` (none is left)."""
        last = self.last
        if last is None:
            return exc  # nothing was tried by this request: the pool's words are right
        if isinstance(last, LoginError):
            return last  # its message says what to do (log in again, retry in N s)
        tried = len(self._outcomes)
        counts = Counter(self._outcomes.values())
        head = (
            f"{tried} {self.provider} credential{'s' if tried != 1 else ''} tried "
            f"({', '.join(f'{n} {word}' for word, n in counts.items())})"
        )
        said = f"the last answered {last.status or 'with an error'}: {last.message}"
        data = {
            "provider": self.provider,
            "keys": tried,
            "status": last.status,
            "type": last.error_type,
            "message": last.message,
            "class": last.failure_class.value,
        }
        match last.failure_class:
            case FailureClass.RATE_LIMIT:
                retry_at = exc.retry_at if isinstance(exc, AllRateLimited) else None
                retry_at = retry_at or last.retry_at or time.time()
                when = time.strftime("%H:%M:%S", time.localtime(retry_at))
                return AllRateLimited(
                    f"{head}; the earliest is usable again at {when}; {said}",
                    {**data, "retryAt": retry_at_text(retry_at)},
                    retry_at=retry_at,
                )
            case FailureClass.AUTH:
                return CredentialRejected(f"{head}; {said}", data)
            case FailureClass.SCOPE:
                return CredentialRejected(f"{head}; {SCOPE_ADVICE}; {said}", data)
            case _:
                return UpstreamError(f"{head}; {said}", data)
