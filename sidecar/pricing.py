"""What a request cost: one dated price table, overridable by the user.

Prices are US dollars per million tokens. A model id resolves to the entry with the
longest matching prefix, so dated ids (``claude-sonnet-4-5-20250929``) find their
family. The user's ``prices.json`` in the sidecar home,
``{"model-prefix": {"input": x, "output": y, "cacheRead": z, "cacheWrite": w}}``,
is merged over the built-in table (its entries win; its prefixes join the match).
A model no entry matches costs nothing and is reported ``known=False``: a guessed
price would be worse than none.

Anthropic cache writes are priced at 1.25× input (the 5-minute cache) and reads at
0.1× input. OpenAI's cached input has its own price per model; it reports no cache
writes. Long-context surcharges (e.g. Sonnet above 200k input tokens) and batch
discounts are not modelled.

Import-light on purpose (json, pathlib, attrs): the engine prices every request.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Protocol

import attrs

__all__ = ["BUILTIN_PRICES", "PRICES_AS_OF", "PRICES_FILE", "Cost", "Price", "cost", "price_for"]

PRICES_AS_OF = "2026-11-01"
PRICES_FILE = "prices.json"

_log = logging.getLogger(__name__)


@attrs.frozen
class Price:
    """US dollars per million tokens."""

    input: float
    output: float
    cache_read: float
    cache_write: float


def _anthropic(input: float, output: float) -> Price:
    return Price(input, output, cache_read=input * 0.1, cache_write=input * 1.25)


def _openai(input: float, output: float, cached: float) -> Price:
    # No cache-write surcharge: OpenAI caches automatically and bills writes as input.
    return Price(input, output, cache_read=cached, cache_write=input)


BUILTIN_PRICES: dict[str, Price] = {
    # Anthropic. Opus 4.5 and later cost less than Opus 4.0 and 4.1, which are listed
    # by name (and 4.0 by its dated id) so that the family prefix means the current price.
    "claude-opus-4": _anthropic(5.0, 25.0),
    "claude-opus-4-0": _anthropic(15.0, 75.0),
    "claude-opus-4-20250514": _anthropic(15.0, 75.0),
    "claude-opus-4-1": _anthropic(15.0, 75.0),
    "claude-sonnet-4": _anthropic(3.0, 15.0),
    "claude-haiku-4": _anthropic(1.0, 5.0),
    "claude-3-7-sonnet": _anthropic(3.0, 15.0),
    "claude-3-5-sonnet": _anthropic(3.0, 15.0),
    "claude-3-5-haiku": _anthropic(0.8, 4.0),
    "claude-3-opus": _anthropic(15.0, 75.0),
    "claude-3-haiku": _anthropic(0.25, 1.25),
    # OpenAI.
    "gpt-5": _openai(1.25, 10.0, 0.125),
    "gpt-5-mini": _openai(0.25, 2.0, 0.025),
    "gpt-5-nano": _openai(0.05, 0.40, 0.005),
    "gpt-4.1": _openai(2.0, 8.0, 0.50),
    "gpt-4.1-mini": _openai(0.40, 1.60, 0.10),
    "gpt-4.1-nano": _openai(0.10, 0.40, 0.025),
    "gpt-4o": _openai(2.50, 10.0, 1.25),
    "gpt-4o-2024-05-13": _openai(5.0, 15.0, 5.0),
    "gpt-4o-mini": _openai(0.15, 0.60, 0.075),
    "o1": _openai(15.0, 60.0, 7.50),
    "o1-mini": _openai(1.10, 4.40, 0.55),
    "o1-pro": _openai(150.0, 600.0, 150.0),
    "o3": _openai(2.0, 8.0, 0.50),
    "o3-mini": _openai(1.10, 4.40, 0.55),
    "o3-pro": _openai(20.0, 80.0, 20.0),
    "o4-mini": _openai(1.10, 4.40, 0.275),
}


class TokenCounts(Protocol):
    """What :func:`cost` reads; ``sidecar.providers.Usage`` has it (structurally, so
    this module does not import the provider layer)."""

    @property
    def input_tokens(self) -> int: ...
    @property
    def output_tokens(self) -> int: ...
    @property
    def cache_read_tokens(self) -> int: ...
    @property
    def cache_write_tokens(self) -> int: ...


@attrs.frozen
class Cost:
    """US dollars. All zero, with ``known=False``, for a model without a price."""

    input: float
    output: float
    cache_read: float
    cache_write: float
    total: float
    currency: str = "USD"
    prices_as_of: str = PRICES_AS_OF
    known: bool = True


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


def _user_price(prefix: str, entry: object) -> Price | None:
    if not isinstance(entry, dict):
        return None
    input, output = _number(entry.get("input")), _number(entry.get("output"))
    if input is None or output is None:
        _log.warning("prices.json: %r needs numeric input and output; ignored", prefix[:80])
        return None
    # Missing cache prices follow Anthropic's ratios, the only provider that bills writes.
    read = _number(entry.get("cacheRead"))
    write = _number(entry.get("cacheWrite"))
    return Price(
        input,
        output,
        cache_read=input * 0.1 if read is None else read,
        cache_write=input * 1.25 if write is None else write,
    )


# Parsed user files by path, kept while (mtime, size) is unchanged: cost() runs once
# per request and the file almost never changes.
_cache: dict[Path, tuple[tuple[int, int], dict[str, Price]]] = {}


def _user_prices(home: Path | None) -> dict[str, Price]:
    if home is None:
        return {}
    path = home / PRICES_FILE
    try:
        stat = path.stat()
    except OSError:
        return {}
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _cache.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    from sidecar.store.safefile import read_capped  # the store loads with the key pool

    prices: dict[str, Price] = {}
    try:
        # The one safe reader of the home's files: a FIFO or a link to /dev/zero
        # here would otherwise hang or exhaust every stream's cost line.
        document = json.loads((read_capped(path) or b"").decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        # A broken override must not break streaming: the built-in prices still apply.
        _log.warning("%s is not readable JSON (%s); using built-in prices", path, exc)
        document = {}
    if isinstance(document, dict):
        for prefix, entry in document.items():
            if isinstance(prefix, str) and prefix and (price := _user_price(prefix, entry)):
                prices[prefix] = price
    _cache[path] = (stamp, prices)
    return prices


def _longest_prefix(model: str, table: dict[str, Price]) -> Price | None:
    best = max((p for p in table if model.startswith(p)), key=len, default=None)
    return None if best is None else table[best]


def price_for(model: str, home: Path | os.PathLike[str] | None = None) -> Price | None:
    """The price of ``model``: longest prefix over the built-in table merged with the
    user's file. A routed id such as OpenRouter's ``openai/gpt-4o`` that matches
    nothing is tried again without its ``vendor/`` part. None when unknown."""
    table = {**BUILTIN_PRICES, **_user_prices(None if home is None else Path(home))}
    found = _longest_prefix(model, table)
    if found is None and "/" in model:
        found = _longest_prefix(model.rsplit("/", 1)[1], table)
    return found


def _dollars(tokens: int, per_million: float) -> float:
    # Rounded to a billionth of a dollar: keeps 0.1 + 0.2 noise out of the editor.
    return round(tokens * per_million / 1_000_000, 9)


def cost(model: str, usage: TokenCounts, home: Path | os.PathLike[str] | None = None) -> Cost:
    """What ``usage`` of ``model`` cost, in USD."""
    price = price_for(model, home)
    if price is None:
        return Cost(0.0, 0.0, 0.0, 0.0, 0.0, known=False)
    parts = (
        _dollars(usage.input_tokens, price.input),
        _dollars(usage.output_tokens, price.output),
        _dollars(usage.cache_read_tokens, price.cache_read),
        _dollars(usage.cache_write_tokens, price.cache_write),
    )
    return Cost(*parts, total=round(sum(parts), 9))
