"""The team state's pure parts: the setting, the names, the merge rule."""

from __future__ import annotations

import pytest

from sidecar.rotation.remote import merge_entry
from sidecar.rotation.state import Cooldown, RotationState
from sidecar.settings import Settings
from sidecar.team import read_team
from sidecar.team._names import Names, credential_hash


def test_no_setting_means_the_files_alone() -> None:
    assert read_team({}) is None


def test_a_bad_url_is_a_problem_naming_the_variable_without_its_password(tmp_path) -> None:
    settings = Settings.load(tmp_path, {"LLM_SIDECAR_STATE": "http://user:hunter22@host:6379"})
    [problem] = settings.problems
    assert problem.variable == "LLM_SIDECAR_STATE" and "redis://" in problem.message
    assert "hunter22" not in problem.message and settings.team is None


def test_a_bad_namespace_is_refused() -> None:
    from sidecar.settings import BadSetting

    env = {"LLM_SIDECAR_STATE": "redis://127.0.0.1:6379/0", "LLM_SIDECAR_STATE_NAMESPACE": "a:b"}
    with pytest.raises(BadSetting) as raised:
        read_team(env)
    assert raised.value.variable == "LLM_SIDECAR_STATE_NAMESPACE"


def test_the_shown_server_has_no_password() -> None:
    config = read_team({"LLM_SIDECAR_STATE": "rediss://me:s3cret-pw@redis.example:6380/2"})
    assert config is not None
    assert config.shown == "rediss://redis.example:6380/2 (default)"
    assert "s3cret" not in repr(config)


def test_one_key_meets_under_one_name_and_only_under_the_namespaces_salt() -> None:
    key = "sk-ant-api03-" + "x" * 40
    assert credential_hash(b"salt", "anthropic", key) == credential_hash(b"salt", "anthropic", key)
    assert credential_hash(b"salt", "anthropic", key) != credential_hash(b"other", "anthropic", key)
    names = Names("acme")
    name = names.entry("cooldowns", "anthropic", "abc")
    assert names.parse(name) == ("cooldowns", "anthropic", "abc")
    assert Names("other").parse(name) is None
    # A model's name may hold any character: it is hashed into the entry's name.
    scoped = names.entry("modelCooldowns", "openai", "abc", "ft:gpt-4o:acme:x")
    assert names.parse(scoped) == ("modelCooldowns", "openai", "abc")
    assert names.parse(names.salt) is None and names.parse(names.channel) is None


def test_a_cooldown_is_kept_until_the_later_end() -> None:
    st = RotationState(cooldowns={"h:1": Cooldown(until=2000.0, failures=3)})
    assert not merge_entry(st, "cooldowns", "h:1", {"until": 1500.0}, now=1000.0)
    assert st.cooldowns["h:1"].until == 2000.0
    assert merge_entry(st, "cooldowns", "h:1", {"until": 2500.0, "failures": 1}, now=1000.0)
    assert st.cooldowns["h:1"].until == 2500.0 and st.cooldowns["h:1"].failures == 3
    assert not merge_entry(st, "cooldowns", "h:2", {"until": 900.0}, now=1000.0)  # over


def test_a_damaged_entry_changes_nothing() -> None:
    st = RotationState()
    for entry in ({}, {"until": "soon"}, {"until": None}):
        assert not merge_entry(st, "cooldowns", "h:1", entry, now=1000.0)
    assert not merge_entry(st, "usage", "h:1", {"requests": 5}, now=1000.0)
    assert st.cooldowns == {}
