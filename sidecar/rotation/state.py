"""One provider's rotation state as typed values, and its JSON form in ``state.json``.

Unlike :mod:`~sidecar.rotation.rules` (what happens) and
:mod:`~sidecar.rotation.status` (what is shown), this is only the data both work on.
The document on disk is shared by every sidecar process of the user and may have
been written by another version, or damaged: :meth:`RotationState.from_doc` reads
what it understands, drops entries it cannot use, and keeps unknown top-level keys so
that writing the state back loses nothing.

The document::

    {"current": state_key | None,       # the credential in use; None: the first
     "rotated": bool,                   # a rotation happened since the last success
     "cooldowns": {state_key: {"until": epoch, "reason": "rateLimit", "failures": n,
                               "billing": bool, "message": str}},
     "rejected": {state_key: {"reason": "auth", "message": str, "at": epoch}},
     "refused": {state_key: {"message": str, "at": epoch}},   # refused for its scope
     "usage": {state_key: {"requests": n, "failures": n, "lastUsed": epoch}}}

A credential is known by its :attr:`Credential.state_key`, never its secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["Cooldown", "RotationState", "Usage", "Verdict"]

_KNOWN = ("current", "rotated", "cooldowns", "rejected", "refused", "usage")


def _number(value: Any, default: float = 0.0) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else default


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _entries(doc: Mapping[str, Any], name: str) -> dict[str, Any]:
    section = doc.get(name)
    return (
        {k: v for k, v in section.items() if isinstance(k, str)}
        if isinstance(section, dict)
        else {}
    )


@attrs.define
class Cooldown:
    """A rate-limited credential rests until ``until`` (epoch seconds)."""

    until: float
    failures: int = 1  # rate limits in a row: the backoff grows with them
    billing: bool = False  # out of credit: a far longer rest
    message: str = ""
    reason: str = "rateLimit"

    @classmethod
    def from_doc(cls, doc: Any) -> Cooldown:
        doc = doc if isinstance(doc, dict) else {}
        return cls(
            until=_number(doc.get("until")),
            failures=int(_number(doc.get("failures"))),
            billing=doc.get("billing") is True,
            message=_text(doc.get("message")),
            reason=_text(doc.get("reason")) or "rateLimit",
        )

    def to_doc(self) -> dict[str, Any]:
        return {
            "until": self.until,
            "reason": self.reason,
            "failures": self.failures,
            "billing": self.billing,
            "message": self.message,
        }


@attrs.define
class Verdict:
    """What the provider said of one credential: rejected (``reason`` "auth") or refused."""

    message: str
    at: float
    reason: str | None = None

    @classmethod
    def from_doc(cls, doc: Any) -> Verdict:
        doc = doc if isinstance(doc, dict) else {}
        reason = doc.get("reason")
        return cls(
            _text(doc.get("message")),
            _number(doc.get("at")),
            reason if isinstance(reason, str) else None,
        )

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"message": self.message, "at": self.at}
        if self.reason is not None:
            doc = {"reason": self.reason, **doc}
        return doc


@attrs.define
class Usage:
    requests: int = 0
    failures: int = 0
    last_used: float | None = None

    @classmethod
    def from_doc(cls, doc: Any) -> Usage:
        doc = doc if isinstance(doc, dict) else {}
        last = doc.get("lastUsed")
        return cls(
            int(_number(doc.get("requests"))),
            int(_number(doc.get("failures"))),
            _number(last) if last is not None else None,
        )

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"requests": self.requests, "failures": self.failures}
        if self.last_used is not None:
            doc["lastUsed"] = self.last_used
        return doc


@attrs.define
class RotationState:
    """One provider's rotation state; see the module's docstring for its JSON form."""

    current: str | None = None
    rotated: bool = False
    cooldowns: dict[str, Cooldown] = attrs.Factory(dict)
    rejected: dict[str, Verdict] = attrs.Factory(dict)
    refused: dict[str, Verdict] = attrs.Factory(dict)
    usage: dict[str, Usage] = attrs.Factory(dict)
    extra: dict[str, Any] = attrs.Factory(dict)  # keys this version does not know: kept

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> RotationState:
        current = doc.get("current")
        return cls(
            current=current if isinstance(current, str) else None,
            rotated=doc.get("rotated") is True,
            cooldowns={k: Cooldown.from_doc(v) for k, v in _entries(doc, "cooldowns").items()},
            rejected={k: Verdict.from_doc(v) for k, v in _entries(doc, "rejected").items()},
            refused={k: Verdict.from_doc(v) for k, v in _entries(doc, "refused").items()},
            usage={k: Usage.from_doc(v) for k, v in _entries(doc, "usage").items()},
            extra={k: v for k, v in doc.items() if k not in _KNOWN},
        )

    def to_doc(self) -> dict[str, Any]:
        return {
            **self.extra,
            "current": self.current,
            "rotated": self.rotated,
            "cooldowns": {k: v.to_doc() for k, v in self.cooldowns.items()},
            "rejected": {k: v.to_doc() for k, v in self.rejected.items()},
            "refused": {k: v.to_doc() for k, v in self.refused.items()},
            "usage": {k: v.to_doc() for k, v in self.usage.items()},
        }

    def forget_verdicts(self, state_key: str) -> None:
        """Drop what the provider said of one credential: the user has just given it again."""
        for section in (self.cooldowns, self.rejected, self.refused):
            section.pop(state_key, None)

    def forget(self, state_key: str) -> None:
        """Drop everything about a credential that left the store."""
        self.forget_verdicts(state_key)
        self.usage.pop(state_key, None)
        if self.current == state_key:
            self.current = None
