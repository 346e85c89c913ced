"""Keys from the environment: priority, splitting, deduplication, the .env file."""

from __future__ import annotations

from pathlib import Path

from sidecar.rotation.keypool import KeyPool
from sidecar.sources import env_credentials, load_environment, parse_env_file
from sidecar.store import Store


def ids(provider: str, env: dict[str, str]) -> list[str]:
    return [c.id for c in env_credentials(provider, env).credentials]


def test_priority_many_then_single_then_numbered_then_extras() -> None:
    env = {
        "ANTHROPIC_API_KEY_3": "k-three-xxxxxxxxxxxx",
        "ANTHROPIC_API_KEY_2": "k-two-xxxxxxxxxxxxxx",
        "ANTHROPIC_API_KEY": "k-single-xxxxxxxxxxx",
        # commas, semicolons and spaces all separate keys
        "ANTHROPIC_API_KEYS": "k-many-1-xxxxxxx, k-many-2-xxxxxxx;k-many-3-xxxxxxx  k-many-4-x",
        "ANTHROPIC_OAUTH_TOKEN": "sk-ant-oat01-tokenxxxxxxxxxx",
    }
    assert ids("anthropic", env) == [
        "env:ANTHROPIC_API_KEYS#1",
        "env:ANTHROPIC_API_KEYS#2",
        "env:ANTHROPIC_API_KEYS#3",
        "env:ANTHROPIC_API_KEYS#4",
        "env:ANTHROPIC_API_KEY",
        "env:ANTHROPIC_API_KEY_2",
        "env:ANTHROPIC_API_KEY_3",
        "env:ANTHROPIC_OAUTH_TOKEN",
    ]
    token = env_credentials("anthropic", env).credentials[-1]
    assert token.kind == "token"  # sent as a Bearer token


def test_duplicates_keep_their_first_place() -> None:
    env = {
        "OPENAI_API_KEYS": "sk-a-xxxxxxxxxxxxxxx,sk-b-xxxxxxxxxxxxxxx",
        "OPENAI_API_KEY": "sk-a-xxxxxxxxxxxxxxx",
    }
    assert ids("openai", env) == ["env:OPENAI_API_KEYS#1", "env:OPENAI_API_KEYS#2"]


def test_the_live_override_is_used_alone() -> None:
    env = {
        "LLM_SIDECAR_LIVE_ANTHROPIC_KEY": "sk-live-xxxxxxxxxxxxx",
        "ANTHROPIC_API_KEY": "sk-other-xxxxxxxxxxxx",
    }
    found = env_credentials("anthropic", env)
    assert found.live_override and [c.id for c in found.credentials] == [
        "env:LLM_SIDECAR_LIVE_ANTHROPIC_KEY"
    ]


def test_google_also_reads_google_api_key() -> None:
    env = {"GEMINI_API_KEY": "AIza-one-xxxxxxxxxxxx", "GOOGLE_API_KEY": "AIza-two-xxxxxxxxxxxx"}
    assert ids("google", env) == ["env:GEMINI_API_KEY", "env:GOOGLE_API_KEY"]


def test_blank_values_are_ignored() -> None:
    assert ids("groq", {"GROQ_API_KEY": "  ", "GROQ_API_KEYS": ",,"}) == []


def test_stored_credentials_come_before_the_environment(home: Path) -> None:
    # Stored first, then the variable set: had the environment key been in use when
    # they were added, they would go after it (adding never moves the key in use).
    stored = KeyPool(Store(home), env={})
    stored.add_key("anthropic", "sk-ant-api03-storedxxxxxxxxxx")
    stored.add_key("anthropic", "sk-ant-api03-envxxxxxxxxxxxxx")  # the same key, also stored
    keypool = KeyPool(Store(home), env={"ANTHROPIC_API_KEY": "sk-ant-api03-envxxxxxxxxxxxxx"})
    creds = keypool.credentials("anthropic")
    assert [c.source for c in creds] == ["pool", "pool"]


def test_env_file_supplies_variables_and_the_process_wins(home: Path) -> None:
    home.mkdir(parents=True)
    (home / ".env").write_text(
        "# provider keys for a sidecar started by a daemon\n"
        "export ANTHROPIC_API_KEY='sk-ant-api03-fromfilexxxxxxxx'\n"
        'OPENAI_API_KEY="sk-proj-fromfilexxxxxxxxxx"\n'
        "not a line\n"
    )
    env = load_environment(home, {"OPENAI_API_KEY": "sk-proj-fromprocessxxxxxxx"})
    assert env["ANTHROPIC_API_KEY"] == "sk-ant-api03-fromfilexxxxxxxx"
    assert env["OPENAI_API_KEY"] == "sk-proj-fromprocessxxxxxxx"


def test_parse_env_file_ignores_junk() -> None:
    assert parse_env_file("A=1\n=2\n3bad=x\n#C=3\nD = ' spaced '\n") == {"A": "1", "D": " spaced "}


def test_an_editor_started_in_a_gateway_env_shell_does_not_send_keys_to_the_gateway(
    tmp_path: Path,
) -> None:
    """`eval "$(llm-sidecar gateway env)"`, then `code .`: the sidecar must not take the
    gateway's URLs for the providers' (the gateway would 401 every real key)."""
    from sidecar.gateway._run import env_lines
    from sidecar.settings import Settings
    from sidecar.sources import GATEWAY_URL_VARS

    shell: dict[str, str] = {"ANTHROPIC_API_KEY": "sk-ant-api03-" + "k" * 40}
    for line in env_lines("llmsc-gw-" + "t" * 32, 8765):
        name, _, value = line.removeprefix("export ").partition("=")
        shell[name] = value.strip("'")
    urls = {k for k, v in shell.items() if v.startswith("http")}
    assert urls == set(GATEWAY_URL_VARS)  # every URL `gateway env` sets is known here

    env = Settings.load(tmp_path / "home", shell).env
    assert not urls & set(env)
    assert env["ANTHROPIC_API_KEY"] == shell["ANTHROPIC_API_KEY"]

    # Without the gateway's token in the shell, a loopback base URL is the user's own.
    del shell["LLM_SIDECAR_GATEWAY_TOKEN"]
    env = Settings.load(tmp_path / "home", shell).env
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:8765/anthropic"
