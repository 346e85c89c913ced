"""What each store document must look like for the store to change it safely.

Valid JSON is not enough: ``"pools": []`` or one provider's pool as an object used
to be read as empty, and the next write of that provider saved it empty, losing
every key in it. The containers the store and the rotation rules index into are
checked here, once, when a file is read; a document that fails is set aside whole
(byte for byte) before anything is written. Single records inside a well-formed
container (a profile, a pool entry) are not checked here: they are skipped and
reported when read, and carried through unchanged when the file is written.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MAX_DEPTH", "shape_problem"]

# Far deeper than any document the store writes (five levels), shallow enough that
# writing it back can never hit the interpreter's recursion limit.
MAX_DEPTH = 64

_NUMBER = (int, float)

# A name read from a damaged file goes into messages only when it looks like a provider:
# whatever else it is (a key pasted as a name, say) must not reach status or a log.
_SHOWN_NAME = re.compile(r"[a-z][a-z0-9_-]{0,23}")


def _name(key: str) -> str:
    return key if _SHOWN_NAME.fullmatch(key) else "…"


def shape_problem(name: str, doc: dict[str, Any]) -> str | None:
    """Why ``doc`` (the content of the file ``name``) cannot be used; None when it can."""
    if _too_deep(doc):
        return f"nested more than {MAX_DEPTH} levels deep"
    check = _CHECKS.get(name)
    return check(doc) if check else None


def _too_deep(doc: Any) -> bool:
    # Iterative: a recursive walk would itself overflow on the documents it looks for.
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return False


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number" if isinstance(value, _NUMBER) else "a value")


def _object_of(doc: dict[str, Any], key: str) -> tuple[dict[str, Any], str | None]:
    """``doc[key]`` when it is an object or absent (as {}); else the problem."""
    value = doc.get(key, {})
    if not isinstance(value, dict):
        return {}, f'"{key}" is {_kind(value)}, expected an object'
    return value, None


def _credentials(doc: dict[str, Any]) -> str | None:
    _, problem = _object_of(doc, "profiles")
    if problem:
        return problem
    order, problem = _object_of(doc, "order")
    if problem:
        return problem
    for provider, ids in order.items():
        if not isinstance(ids, list):
            return f'"order.{_name(provider)}" is {_kind(ids)}, expected an array'
    return None


def _pool(doc: dict[str, Any]) -> str | None:
    pools, problem = _object_of(doc, "pools")
    if problem:
        return problem
    for provider, entries in pools.items():
        if not isinstance(entries, list):
            return f'"pools.{_name(provider)}" is {_kind(entries)}, expected an array'
    return None


# The rotation state's sections, and the numeric fields the rules do arithmetic on.
_SECTIONS = {
    "cooldowns": ("failures",),
    "rejected": (),
    "usage": ("failures", "requests", "lastUsed"),
}


def _state(doc: dict[str, Any]) -> str | None:
    providers, problem = _object_of(doc, "providers")
    if problem:
        return problem
    for provider, st in providers.items():
        where = f"providers.{_name(provider)}"
        if not isinstance(st, dict):
            return f'"{where}" is {_kind(st)}, expected an object'
        for section, numbers in _SECTIONS.items():
            entries, problem = _object_of(st, section)
            if problem:
                return f'"{where}.{section}" is {_kind(st[section])}, expected an object'
            for entry in entries.values():
                if not isinstance(entry, dict):
                    return f'"{where}.{section}" holds {_kind(entry)}, expected objects'
                for field in numbers:
                    value = entry.get(field, 0)
                    if not isinstance(value, _NUMBER) or isinstance(value, bool):
                        return f'a "{field}" in "{where}.{section}" is {_kind(value)}'
    return None


_CHECKS = {"credentials.json": _credentials, "pool.json": _pool, "state.json": _state}
