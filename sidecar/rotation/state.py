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
     "policy": "sticky" | "primary",    # which key when (absent: sticky)
     "cooldowns": {state_key: {"until": epoch, "reason": "rateLimit" | "overloaded",
                               "failures": n, "billing": bool, "message": str}},
     "modelCooldowns": {state_key: {model_scope: {...as a cooldown...}}},
     "headroom": {state_key: "[window, ...]"}, # Window docs, as one compact JSON string
     "rejected": {state_key: {"reason": "auth", "message": str, "at": epoch}},
     "refused": {state_key: {"message": str, "at": epoch}},   # refused for its scope
     "usage": {state_key: {"requests": n, "failures": n, "lastUsed": epoch}}}

A credential is known by its :attr:`Credential.state_key`, never its secret. A
cooldown in ``cooldowns`` rests the whole credential (billing, a subscription's
account-wide window); one in ``modelCooldowns`` only its requests for one model scope
(see :func:`sidecar.rotation.headroom.model_scope`).

Each credential's headroom is kept as one compact JSON string, parsed only for the
credentials a decision reads (:meth:`RotationState.windows`): every read of the store
copies the whole document, and the windows of every key, parsed and copied on every
request, made the hot path several times slower (bench/headroom.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from sidecar.rotation.headroom import Window

__all__ = ["POLICIES", "Cooldown", "RotationState", "Usage", "Verdict"]

_KNOWN = (
    "current",
    "rotated",
    "policy",
    "cooldowns",
    "modelCooldowns",
    "rejected",
    "refused",
    "usage",
    "headroom",
)
POLICIES = ("sticky", "primary")


def _number(value: Any, default: float = 0.0) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else default


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _section(doc: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A section as it is (not copied, not checked: its readers check what they take)."""
    section = doc.get(name)
    return section if isinstance(section, dict) else {}


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
    policy: str = "sticky"
    model_cooldowns: dict[str, dict[str, Cooldown]] = attrs.Factory(dict)
    # Headroom: as read (JSON strings), and the credentials parsed or changed since.
    headroom_raw: dict[str, Any] = attrs.Factory(dict)
    headroom: dict[str, tuple[Window, ...]] = attrs.Factory(dict)
    extra: dict[str, Any] = attrs.Factory(dict)  # keys this version does not know: kept

    def windows(self, state_key: str) -> tuple[Window, ...]:
        """The latest windows the provider reported for one credential (parsed once)."""
        found = self.headroom.get(state_key)
        if found is None:
            raw = self.headroom_raw.get(state_key)
            found = _parse_windows(raw) if isinstance(raw, str) else ()
            self.headroom[state_key] = found
        return found

    def headroom_keys(self) -> list[str]:
        """The credentials with reported windows."""
        return [*self.headroom_raw.keys() - self.headroom.keys(), *self.headroom]

    def set_windows(self, state_key: str, windows: tuple[Window, ...]) -> None:
        self.headroom[state_key] = windows
        self.headroom_raw.pop(state_key, None)  # written from the parsed form now

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> RotationState:
        current = doc.get("current")
        policy = doc.get("policy")
        return cls(
            current=current if isinstance(current, str) else None,
            rotated=doc.get("rotated") is True,
            cooldowns={k: Cooldown.from_doc(v) for k, v in _entries(doc, "cooldowns").items()},
            rejected={k: Verdict.from_doc(v) for k, v in _entries(doc, "rejected").items()},
            refused={k: Verdict.from_doc(v) for k, v in _entries(doc, "refused").items()},
            usage={k: Usage.from_doc(v) for k, v in _entries(doc, "usage").items()},
            policy=policy if policy in POLICIES else "sticky",
            model_cooldowns={
                k: {m: Cooldown.from_doc(c) for m, c in v.items() if isinstance(m, str)}
                for k, v in _entries(doc, "modelCooldowns").items()
                if isinstance(v, dict)
            },
            # As read: checked when a credential's windows are asked for (windows()).
            headroom_raw=_section(doc, "headroom"),
            extra={k: v for k, v in doc.items() if k not in _KNOWN},
        )

    def to_doc(self) -> dict[str, Any]:
        doc = {
            **self.extra,
            "current": self.current,
            "rotated": self.rotated,
            "cooldowns": {k: v.to_doc() for k, v in self.cooldowns.items()},
            "rejected": {k: v.to_doc() for k, v in self.rejected.items()},
            "refused": {k: v.to_doc() for k, v in self.refused.items()},
            "usage": {k: v.to_doc() for k, v in self.usage.items()},
        }
        # Written only when there is something: a state without them stays as it was.
        if self.policy != "sticky":
            doc["policy"] = self.policy
        if self.model_cooldowns:
            doc["modelCooldowns"] = {
                k: {m: c.to_doc() for m, c in v.items()}
                for k, v in self.model_cooldowns.items()
                if v
            }
        if self.headroom or self.headroom_raw:
            written = {k: _dump_windows(v) for k, v in self.headroom.items() if v}
            doc["headroom"] = {**self.headroom_raw, **written}
        return doc

    def forget_verdicts(self, state_key: str) -> None:
        """Drop what the provider said of one credential: the user has just given it again."""
        for section in (self.cooldowns, self.rejected, self.refused, self.model_cooldowns):
            section.pop(state_key, None)

    def forget(self, state_key: str) -> None:
        """Drop everything about a credential that left the store."""
        self.forget_verdicts(state_key)
        self.usage.pop(state_key, None)
        self.headroom.pop(state_key, None)
        self.headroom_raw.pop(state_key, None)
        if self.current == state_key:
            self.current = None

    def clear_headroom(self) -> None:
        self.headroom.clear()
        self.headroom_raw.clear()


# Parsed headroom by its JSON text: the same text is read again by every request until
# the next write, and Windows are frozen, so one parse is shared. Bounded.
_PARSED: dict[str, tuple[Window, ...]] = {}
_PARSED_MAX = 4096


def _parse_windows(raw: str) -> tuple[Window, ...]:
    found = _PARSED.get(raw)
    if found is not None:
        return found
    try:
        docs = json.loads(raw)
    except ValueError:  # damaged by hand or by another version: nothing is known
        docs = []
    windows = (
        tuple(w for w in map(Window.from_doc, docs) if w is not None)
        if isinstance(docs, list)
        else ()
    )
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.clear()
    _PARSED[raw] = windows
    return windows


def _dump_windows(windows: tuple[Window, ...]) -> str:
    return json.dumps([w.to_doc() for w in windows], separators=(",", ":"))
