"""rotation.rules and .status: choosing, rotating, evicting, status text; injected clock."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.credentials import Credential
from sidecar.errors import AllRateLimited, CredentialRejected, NoCredentials
from sidecar.rotation import rules as rotation
from sidecar.rotation.classify import Failure, FailureClass
from sidecar.rotation.rules import Action
from sidecar.rotation.state import Cooldown, RotationState, Usage
from sidecar.rotation.status import StatusKind, provider_status

NOW = 1_800_000_000.0


def key(n: int, kind: str = "api_key", **kw: Any) -> Credential:
    return Credential(
        id=f"anthropic:pool-{n}",
        provider="anthropic",
        kind=kind,  # type: ignore[arg-type]
        source="pool",
        secret=f"sk-ant-api03-{'x' * 20}{n:04d}",
        **kw,
    )


def failure(cls: FailureClass, retry_at: float | None = None, billing: bool = False) -> Failure:
    return Failure(cls, 429, None, "slow down", retry_at, billing)


def test_the_first_credential_answers_first() -> None:
    pool, st = [key(1), key(2), key(3)], RotationState()
    choice = rotation.choose("anthropic", pool, st, NOW)
    assert choice.credential == pool[0] and choice.index == 0
    assert not st.rotated


def test_rate_limit_cools_down_until_the_providers_reset_and_rotates() -> None:
    pool, st = [key(1), key(2), key(3)], RotationState()
    action = rotation.record_failure(
        pool, st, pool[0], failure(FailureClass.RATE_LIMIT, NOW + 30), NOW
    )
    assert action is Action.RETRY
    assert st.cooldowns[pool[0].state_key].until == NOW + 30
    choice = rotation.choose("anthropic", pool, st, NOW)
    assert choice.credential == pool[1]
    status = provider_status("anthropic", pool, st, NOW)
    assert (status.text, status.kind, status.index, status.rotated) == (
        "🔑 2/3 (rotated)",
        StatusKind.WARNING,
        2,
        True,
    )
    # The cooldown runs out; key 2 stays current until it fails in turn.
    later = NOW + 31
    assert rotation.choose("anthropic", pool, st, later).credential == pool[1]


def test_without_a_reset_time_the_backoff_grows() -> None:
    pool, st = [key(1), key(2)], RotationState()
    rotation.record_failure(pool, st, pool[0], failure(FailureClass.RATE_LIMIT), NOW)
    first = st.cooldowns[pool[0].state_key].until - NOW
    rotation.record_failure(pool, st, pool[0], failure(FailureClass.RATE_LIMIT), NOW)
    second = st.cooldowns[pool[0].state_key].until - NOW
    assert 0 < first < second


def test_billing_exhaustion_cools_down_for_long() -> None:
    pool, st = [key(1), key(2)], RotationState()
    rotation.record_failure(pool, st, pool[0], failure(FailureClass.RATE_LIMIT, billing=True), NOW)
    assert st.cooldowns[pool[0].state_key].until - NOW >= 3600


def test_success_clears_the_rotated_marker() -> None:
    pool, st = [key(1), key(2)], RotationState()
    rotation.record_failure(pool, st, pool[0], failure(FailureClass.RATE_LIMIT, NOW + 5), NOW)
    choice = rotation.choose("anthropic", pool, st, NOW)
    rotation.record_success(st, choice.credential, NOW)
    status = provider_status("anthropic", pool, st, NOW)
    assert status.text == "🔑 2/2" and status.kind is StatusKind.NORMAL
    assert st.usage[pool[1].state_key].requests == 1


def test_all_cooling_down_raises_with_the_earliest_retry_time() -> None:
    pool, st = [key(1), key(2)], RotationState()
    rotation.record_failure(pool, st, pool[0], failure(FailureClass.RATE_LIMIT, NOW + 50), NOW)
    rotation.record_failure(pool, st, pool[1], failure(FailureClass.RATE_LIMIT, NOW + 20), NOW)
    with pytest.raises(AllRateLimited) as err:
        rotation.choose("anthropic", pool, st, NOW)
    assert err.value.data == {"provider": "anthropic", "keys": 2, "retryAt": "2027-01-15T08:00:20Z"}
    status = provider_status("anthropic", pool, st, NOW)
    assert status.kind is StatusKind.ERROR and "(all rate limited)" in status.text


def test_the_retry_time_on_the_wire_is_rounded_up_to_the_second() -> None:
    # Rounded down, a client that retried at the named second was refused.
    pool, st = [key(1)], RotationState()
    rotation.record_failure(pool, st, pool[0], failure(FailureClass.RATE_LIMIT, NOW + 20.3), NOW)
    with pytest.raises(AllRateLimited) as err:
        rotation.choose("anthropic", pool, st, NOW)
    assert err.value.data["retryAt"] == "2027-01-15T08:00:21Z"


def test_an_invalid_key_is_rejected_and_leaves_the_rotation() -> None:
    pool, st = [key(1), key(2), key(3)], RotationState()
    action = rotation.record_failure(pool, st, pool[1], failure(FailureClass.AUTH), NOW)
    assert action is Action.RETRY
    assert rotation.usable_pool(pool, st) == [pool[0], pool[2]]
    status = provider_status("anthropic", pool, st, NOW)
    assert status.size == 2
    assert status.credentials[-1].state == "rejected"


def test_an_oauth_login_is_refreshed_not_evicted() -> None:
    login = key(1, kind="oauth", refresh="r" * 30)
    pool, st = [login, key(2)], RotationState()
    assert (
        rotation.record_failure(pool, st, login, failure(FailureClass.AUTH), NOW) is Action.REFRESH
    )
    assert rotation.usable_pool(pool, st) == pool


def test_scope_refusal_skips_for_this_request_only() -> None:
    pool, st = [key(1), key(2)], RotationState()
    assert (
        rotation.record_failure(pool, st, pool[0], failure(FailureClass.SCOPE), NOW) is Action.SKIP
    )
    skip = {pool[0].state_key}
    assert rotation.choose("anthropic", pool, st, NOW, skip).credential == pool[1]
    assert rotation.choose("anthropic", pool, RotationState(), NOW).credential == pool[0]
    with pytest.raises(CredentialRejected, match="API key"):
        rotation.choose("anthropic", [pool[0]], RotationState(), NOW, skip)


def test_a_request_error_is_returned_without_rotation() -> None:
    pool, st = [key(1), key(2)], RotationState()
    assert (
        rotation.record_failure(pool, st, pool[0], failure(FailureClass.REQUEST), NOW)
        is Action.RETURN
    )
    assert rotation.choose("anthropic", pool, st, NOW).credential == pool[0]
    assert not st.rotated


def test_reset_returns_to_the_first_key_with_cooldowns_cleared() -> None:
    pool, st = [key(1), key(2)], RotationState()
    rotation.record_failure(pool, st, pool[0], failure(FailureClass.RATE_LIMIT, NOW + 500), NOW)
    rotation.choose("anthropic", pool, st, NOW)
    rotation.reset(st)
    assert rotation.choose("anthropic", pool, st, NOW).credential == pool[0]
    assert provider_status("anthropic", pool, st, NOW).text == "🔑 1/2"


def test_no_credentials() -> None:
    with pytest.raises(NoCredentials, match="key add"):
        rotation.choose("anthropic", [], RotationState(), NOW)
    status = provider_status("anthropic", [], RotationState(), NOW)
    assert (status.text, status.kind, status.index, status.size) == (
        "🔑 no credentials",
        StatusKind.INACTIVE,
        0,
        0,
    )


@pytest.mark.parametrize(
    ("expires_in", "state", "text", "kind"),
    [
        (None, "ok", "🔑 ok", StatusKind.NORMAL),
        (3 * 86400, "ok", "🔑 ok", StatusKind.NORMAL),
        (5 * 3600 + 60, "expiring", "🔑 expires in 5h", StatusKind.WARNING),
        (-60, "expired", "🔑 expired", StatusKind.ERROR),
    ],
)
def test_a_single_credential_names_its_state(
    expires_in: float | None, state: str, text: str, kind: StatusKind
) -> None:
    token = key(1, kind="token", expires_at=None if expires_in is None else NOW + expires_in)
    status = provider_status("anthropic", [token], RotationState(), NOW)
    assert (status.credentials[0].state, status.text, status.kind) == (state, text, kind)
    assert "/" not in status.text  # no 🔑 i/n with a single credential


def test_a_single_credential_never_rotates() -> None:
    pool, st = [key(1)], RotationState()
    rotation.record_failure(pool, st, pool[0], failure(FailureClass.RATE_LIMIT, NOW + 60), NOW)
    assert not st.rotated
    status = provider_status("anthropic", pool, st, NOW)
    assert status.text.startswith("🔑 rate limited until")
    with pytest.raises(AllRateLimited):
        rotation.choose("anthropic", pool, st, NOW)


def test_an_expired_token_is_skipped() -> None:
    pool = [key(1, kind="token", expires_at=NOW - 1), key(2)]
    assert rotation.choose("anthropic", pool, RotationState(), NOW).credential == pool[1]


def test_order_explicit_then_pool_then_profiles_then_env_deduplicated() -> None:
    def cred(id: str, source: str, secret: str) -> Credential:
        return Credential(
            id=id,
            provider="anthropic",
            kind="api_key",
            source=source,  # type: ignore[arg-type]
            secret=secret,
        )

    pool = [cred("anthropic:pool-a", "pool", "A" * 20)]
    profiles = [
        cred("anthropic:p1", "profile", "B" * 20),
        cred("anthropic:p2", "profile", "C" * 20),
    ]
    env = [cred("env:X", "env", "C" * 20), cred("env:Y", "env", "D" * 20)]
    ordered = rotation.order_credentials(["anthropic:p2"], pool, profiles, env)
    assert [c.id for c in ordered] == ["anthropic:p2", "anthropic:pool-a", "anthropic:p1", "env:Y"]


def test_usage_counts_alone_never_undo_a_rotation() -> None:
    pool, st = [key(1), key(2)], RotationState()
    rotation.record_usage(st, pool[0], NOW)
    rotation.record_failure(pool, st, pool[0], failure(FailureClass.RATE_LIMIT, NOW + 60), NOW)
    rotation.record_usage(st, pool[0], NOW - 1)  # a count written late
    assert st.rotated is True and st.current == pool[1].state_key
    assert st.usage[pool[0].state_key] == Usage(requests=2, failures=1, last_used=NOW)


def test_a_choice_says_whether_it_rotated() -> None:
    pool, st = [key(1), key(2)], RotationState()
    assert rotation.choose("anthropic", pool, st, NOW).rotated is False
    st.cooldowns = {pool[0].state_key: Cooldown(until=NOW + 60)}
    assert rotation.choose("anthropic", pool, st, NOW).rotated is True
    assert rotation.choose("anthropic", pool, st, NOW).rotated is False  # already current


def test_the_state_document_round_trips_and_survives_damage() -> None:
    """state.json is shared with other processes and versions: what is not understood is
    dropped or kept aside, never a crash, and a well-formed document comes back as is."""
    k = key(1).state_key
    doc = {
        "current": k,
        "rotated": True,
        "cooldowns": {
            k: {"until": NOW, "reason": "rateLimit", "failures": 2, "billing": False, "message": ""}
        },
        "rejected": {"h:x": {"reason": "auth", "message": "bad", "at": NOW}},
        "refused": {"h:y": {"message": "scope", "at": NOW}},
        "usage": {k: {"requests": 3, "failures": 1, "lastUsed": NOW}},
        "fromANewerVersion": [1, 2],
    }
    assert RotationState.from_doc(doc).to_doc() == doc
    damaged = RotationState.from_doc(
        {"current": 7, "cooldowns": [], "rejected": {"h:z": "?"}, "usage": {k: {"requests": "x"}}}
    )
    assert damaged.current is None and damaged.cooldowns == {}
    assert "h:z" in damaged.rejected  # still out of the rotation
    assert damaged.usage[k].requests == 0
