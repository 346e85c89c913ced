"""Where credentials written to the store go in their provider's order.

Adding a credential never changes which one is in use, nor its number in the
status text (``🔑 1/2``): the user reads that number, and the next request must go
out on the credential it names. The natural order (explicit order, pool entries,
profiles, environment keys) would put a new pool key before a profile or an
environment key in use, and a re-imported login that had been rejected back in
front of the one that replaced it. So every write of credentials ends with
:func:`keep_in_use`: the credentials usable before the write stay first, in their
order, and anything new or newly usable goes after them. When the natural order
does not do that by itself, the explicit order is written to make it so.

A credential is "the same" across the write when it keeps its id (a re-imported
login with fresh tokens) or its secret (a login moved from its profile into the
pool by ``key add --login``).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from sidecar.credentials import Credential
from sidecar.rotation.state import RotationState

__all__ = ["Placement", "keep_in_use"]


@attrs.frozen
class Placement:
    order: list[str] | None  # the explicit order to write; None: the natural one is right
    current: str | None  # the state key of the credential in use after the write


def _rank(before: Sequence[Credential], after: Sequence[Credential]) -> dict[str, int]:
    """Each credential of ``after`` that was in ``before``: its position there, by id.

    ``after`` holds each id and each secret once (rotation order is deduplicated by
    both), so an old credential has at most two matches, found by index: comparing
    every pair was quadratic, 50 ms per write at 1,000 keys.
    """
    where: dict[tuple[str, str], int] = {}
    for j, new in enumerate(after):
        where.setdefault(("id", new.id), j)
        where.setdefault(("secret", new.secret), j)
    rank: dict[str, int] = {}
    for i, old in enumerate(before):
        # The first match in ``after``'s order not ranked yet, as a scan would find it.
        found = sorted(
            j
            for j in {where.get(("id", old.id)), where.get(("secret", old.secret))}
            if j is not None
        )
        for j in found:
            if after[j].id not in rank:
                rank[after[j].id] = i
                break
    return rank


def keep_in_use(
    before: Sequence[Credential],
    after_all: Sequence[Credential],
    after_usable: Sequence[Credential],
    st: RotationState,
) -> Placement:
    """The order and current credential that keep ``before`` (the usable pool before
    the write) first and in use; ``st`` is the provider's rotation state (read only)."""
    rank = _rank(before, after_all)
    # sorted() is stable: what is new keeps its natural order, after the old ones.
    wanted = sorted(after_all, key=lambda c: rank.get(c.id, len(before)))
    usable = {c.id for c in after_usable}
    natural = [c.id for c in after_usable]
    order = None if [c.id for c in wanted if c.id in usable] == natural else [c.id for c in wanted]

    current = st.current
    in_use = next((c for c in before if c.state_key == current), None)
    if in_use is not None:
        # The credential in use may have a new state key (a login that moved into the
        # pool has a new id): follow it, so that it stays the one in use.
        moved = next((c for c in after_all if rank.get(c.id) == before.index(in_use)), None)
        if moved is not None:
            current = moved.state_key
    return Placement(order, current)
