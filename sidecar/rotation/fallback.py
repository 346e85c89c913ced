"""Where a request goes when its provider cannot answer: the user's fallback list, pure.

Unlike :mod:`~sidecar.rotation.failover` (the next *credential* of one provider),
this chooses the next *provider and model* once every credential of the requested
one is cooling down, out of credit, rejected or over its daily budget. It only reads
the user's list: a request never goes to a provider or model the user did not name.
The engine runs the choice (:meth:`sidecar.engine.Engine.stream`); the file is read
and written by :mod:`sidecar.rotation.routing`.

The document, ``fallbacks.json`` in the home::

    {"version": 1,
     "fallbacks": [{"provider": "anthropic", "model": "claude-sonnet-4-5*",
                    "to": [{"provider": "openrouter", "model": "anthropic/claude-sonnet-4.5"}]}]}

``model`` is a shell-style pattern (``*``, ``?``, ``[...]``) matched against the whole
model id; the first rule whose provider and pattern match is used, its targets tried
in order.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from sidecar import paths
from sidecar.errors import (
    AllRateLimited,
    BudgetExceeded,
    CredentialRejected,
    LoginError,
    NoCredentials,
    SidecarError,
)

__all__ = [
    "FALLBACKS_FILE",
    "Rule",
    "Target",
    "parse_target",
    "reason_to_fall_back",
    "rules_from_doc",
    "rules_to_doc",
    "targets_for",
    "with_fallbacks_tried",
]

FALLBACKS_FILE = paths.FALLBACKS_FILE

# The errors that mean "this provider cannot answer now, whoever asks": every credential
# cooling down or out of credit, rejected, missing, a login that cannot be renewed, or
# the daily budget spent. A bad request or an unknown model is the request's own fault
# and would fail the same way elsewhere: it is returned as is.
_TRIGGERS: tuple[type[SidecarError], ...] = (
    AllRateLimited,
    CredentialRejected,
    NoCredentials,
    LoginError,
    BudgetExceeded,
)


@attrs.frozen
class Target:
    """One place a request may go: a provider and the model id it knows it by."""

    provider: str
    model: str

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}"


@attrs.frozen
class Rule:
    """Requests to ``provider`` for a model matching ``pattern`` fall back to ``to``."""

    provider: str
    pattern: str
    to: tuple[Target, ...]

    def matches(self, provider: str, model: str) -> bool:
        return provider == self.provider and fnmatch.fnmatchcase(model, self.pattern)


def parse_target(text: str, providers: Iterable[str]) -> Target:
    """``provider:model`` (the model may hold colons); ValueError naming what is wrong."""
    provider, sep, model = text.partition(":")
    known = list(providers)
    if not sep or not model.strip():
        raise ValueError(
            f"{text!r}: expected PROVIDER:MODEL, e.g. openrouter:anthropic/claude-sonnet-4.5"
        )
    if provider not in known:
        raise ValueError(f"{provider!r} is not a provider (known: {', '.join(known)})")
    return Target(provider, model.strip())


def rules_from_doc(doc: Mapping[str, Any] | None) -> list[Rule]:
    """The rules in a ``fallbacks.json`` document; entries it cannot use are skipped."""
    rules: list[Rule] = []
    entries = doc.get("fallbacks") if isinstance(doc, Mapping) else None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        provider, pattern, to = entry.get("provider"), entry.get("model"), entry.get("to")
        if not (isinstance(provider, str) and isinstance(pattern, str) and isinstance(to, list)):
            continue
        targets = tuple(
            Target(t["provider"], t["model"])
            for t in to
            if isinstance(t, dict)
            and isinstance(t.get("provider"), str)
            and isinstance(t.get("model"), str)
        )
        if targets:
            rules.append(Rule(provider, pattern, targets))
    return rules


def rules_to_doc(rules: Iterable[Rule]) -> list[dict[str, Any]]:
    """The ``fallbacks`` list of the document."""
    return [
        {
            "provider": r.provider,
            "model": r.pattern,
            "to": [{"provider": t.provider, "model": t.model} for t in r.to],
        }
        for r in rules
    ]


def targets_for(rules: Iterable[Rule], provider: str, model: str) -> list[Target]:
    """Where a request to ``provider``/``model`` may go next, in order: the first
    matching rule's targets, without the request's own provider and model."""
    for rule in rules:
        if rule.matches(provider, model):
            return [t for t in rule.to if t != Target(provider, model)]
    return []


def reason_to_fall_back(exc: BaseException) -> str | None:
    """Why ``exc`` lets a request go to a fallback (its message), or None when it does not."""
    if isinstance(exc, _TRIGGERS):
        return exc.message
    return None


def with_fallbacks_tried(
    exc: SidecarError, tried: list[tuple[Target, SidecarError]]
) -> SidecarError:
    """The requested provider's own error (its code and data kept, so a client that
    reads ``retryAt`` still can), its message and data naming each fallback tried."""
    if not tried:
        return exc
    said = "; ".join(f"fallback {t.provider} {t.model}: {err.message}" for t, err in tried)
    exc.message = f"{exc.message}; {said}"
    exc.args = (exc.message,)
    exc.data = {
        **(exc.data or {}),
        "fallbacks": [
            {"provider": t.provider, "model": t.model, "code": err.code, "message": err.message}
            for t, err in tried
        ],
    }
    return exc
