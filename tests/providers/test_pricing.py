"""Prices: the built-in table, the user's override file, longest prefix, unknown models."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sidecar.pricing import BUILTIN_PRICES, PRICES_AS_OF, Price, cost, price_for
from sidecar.providers import Usage


def test_protocol_example() -> None:
    # docs/protocol.md: 8 input and 3 output tokens of claude-sonnet-4-5.
    c = cost("claude-sonnet-4-5", Usage(input_tokens=8, output_tokens=3))
    assert (c.input, c.output, c.cache_read, c.cache_write) == (0.000024, 0.000045, 0.0, 0.0)
    assert c.total == 0.000069
    assert (c.currency, c.prices_as_of, c.known) == ("USD", PRICES_AS_OF, True)
    assert PRICES_AS_OF == "2026-11-01"


def test_cache_ratios_and_dated_ids() -> None:
    price = price_for("claude-sonnet-4-5-20250929")
    assert price is not None
    assert (price.input, price.output, price.cache_write) == (3.0, 15.0, 3.75)
    assert price.cache_read == pytest.approx(0.3)
    c = cost("claude-sonnet-4-5-20250929", Usage(1_000_000, 0, 1_000_000, 1_000_000))
    assert (c.input, c.cache_read, c.cache_write) == (3.0, 0.3, 3.75)
    assert c.total == pytest.approx(7.05)


def test_longest_prefix_wins() -> None:
    assert price_for("claude-opus-4-5-20251101") == BUILTIN_PRICES["claude-opus-4"]
    assert price_for("claude-opus-4-1-20250805") == BUILTIN_PRICES["claude-opus-4-1"]
    assert price_for("claude-opus-4-20250514") == BUILTIN_PRICES["claude-opus-4-20250514"]
    assert price_for("claude-opus-4-20250514").input == 15.0  # type: ignore[union-attr]
    assert price_for("gpt-4o-mini-2024-07-18") == BUILTIN_PRICES["gpt-4o-mini"]
    assert price_for("gpt-4o-2024-08-06") == BUILTIN_PRICES["gpt-4o"]
    assert price_for("gpt-4.1-nano") == BUILTIN_PRICES["gpt-4.1-nano"]
    assert price_for("o4-mini-2025-04-16") == BUILTIN_PRICES["o4-mini"]
    assert price_for("claude-haiku-4-5") == BUILTIN_PRICES["claude-haiku-4"]


def test_routed_ids() -> None:
    assert price_for("openai/gpt-4o-mini") == BUILTIN_PRICES["gpt-4o-mini"]


def test_openai_cached_input() -> None:
    c = cost("gpt-4o", Usage(input_tokens=200, output_tokens=30, cache_read_tokens=1000))
    assert c.input == 0.0005 and c.cache_read == 0.00125 and c.output == 0.0003


def test_unknown_model_is_zero_and_unknown() -> None:
    c = cost("llama-3.3-70b-versatile", Usage(1000, 1000))
    assert (c.total, c.known) == (0.0, False)


def test_user_file_overrides_and_adds(tmp_path: Path) -> None:
    (tmp_path / "prices.json").write_text(
        json.dumps(
            {
                "claude-sonnet-4": {"input": 2, "output": 10, "cacheRead": 0.5, "cacheWrite": 9},
                "llama-3.3": {"input": 0.59, "output": 0.79},
                "claude-sonnet-4-5-special": {"input": 1, "output": 1},
                "broken": {"input": "free"},
                "worse": 3,
            }
        )
    )
    assert price_for("claude-sonnet-4-5", tmp_path) == Price(2.0, 10.0, 0.5, 9.0)
    assert price_for("claude-sonnet-4-5-special-2026", tmp_path) == Price(1.0, 1.0, 0.1, 1.25)
    llama = cost("llama-3.3-70b", Usage(1_000_000, 1_000_000), tmp_path)
    assert (llama.known, llama.total) == (True, 1.38)
    assert price_for("broken", tmp_path) is None
    assert price_for("claude-haiku-4-5", tmp_path) == BUILTIN_PRICES["claude-haiku-4"]
    # The file is re-read when it changes.
    (tmp_path / "prices.json").write_text(json.dumps({"llama-3.3": {"input": 1, "output": 1}}))
    os.utime(tmp_path / "prices.json", ns=(1, 1))
    assert price_for("llama-3.3-70b", tmp_path) == Price(1.0, 1.0, 0.1, 1.25)


def test_broken_or_missing_file_falls_back(tmp_path: Path) -> None:
    assert price_for("gpt-4o", tmp_path / "missing") == BUILTIN_PRICES["gpt-4o"]
    (tmp_path / "prices.json").write_text("{not json")
    assert price_for("gpt-4o", tmp_path) == BUILTIN_PRICES["gpt-4o"]
    (tmp_path / "prices.json").write_text("[1, 2]")
    assert price_for("gpt-4o", tmp_path) == BUILTIN_PRICES["gpt-4o"]
