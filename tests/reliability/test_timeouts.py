"""sidecar.timeouts: LLM_SIDECAR_{CONNECT,READ,TOTAL}_TIMEOUT, bounded, never "forever"."""

from __future__ import annotations

import logging

import httpx
import pytest

from sidecar import timeouts
from sidecar.timeouts import Timeouts, from_env


def test_defaults() -> None:
    t = from_env({})
    assert (t.connect, t.read, t.total) == (10.0, 120.0, 600.0)
    spec = t.httpx()
    assert isinstance(spec, httpx.Timeout)
    assert (spec.connect, spec.read, spec.write, spec.pool) == (10.0, 120.0, 30.0, 10.0)


def test_values_from_the_environment() -> None:
    env = {
        "LLM_SIDECAR_CONNECT_TIMEOUT": "2.5",
        "LLM_SIDECAR_READ_TIMEOUT": " 30 ",
        "LLM_SIDECAR_TOTAL_TIMEOUT": "90",
    }
    t = from_env(env)
    assert (t.connect, t.read, t.total) == (2.5, 30.0, 90.0)
    assert httpx.Timeout(**t.httpx_kwargs()).read == 30.0


@pytest.mark.parametrize(
    "raw", ["", "   ", "abc", "0", "-5", "nan", "inf", "-inf", "1e9", "10s", "sk-ant-api03-xyz0123"]
)
def test_invalid_values_fall_back_to_the_default_with_a_warning(
    raw: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="sidecar.timeouts"):
        t = from_env({"LLM_SIDECAR_READ_TIMEOUT": raw})
    assert t.read == timeouts.DEFAULTS.read
    if raw.strip():
        assert "LLM_SIDECAR_READ_TIMEOUT" in caplog.text
        assert "sk-ant-api03-xyz0123" not in caplog.text  # shortened: never a whole paste
    else:
        assert caplog.text == ""  # unset and empty mean "the default", quietly


def test_every_field_is_checked() -> None:
    for bad in (0, -1, float("inf"), float("nan"), timeouts.MAXIMUM * 2, True):
        with pytest.raises(ValueError):
            Timeouts(read=bad)


def test_the_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_SIDECAR_CONNECT_TIMEOUT", "3")
    assert from_env().connect == 3.0
