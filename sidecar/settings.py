"""Every setting of the sidecar, read once from the environment and the home's ``.env``.

Unlike :mod:`sidecar.sources` (the *credentials* the environment holds) this is how the
sidecar behaves: its home, timeouts, body limits and OAuth knobs, plus the merged
environment that provider base URLs and Azure options are looked up in by the
catalog's variable names (:func:`sidecar.providers.get_provider`). One object is built
per process by its face (the server's lazy services, a CLI command, the gateway's run),
which hands each part the piece it needs: the engine and the gateway's proxy the whole
object, the logins and refreshes its environment, the team link its ``team``, and the
key pool only its environment (keys found there) and its problems.

One policy for a bad value, never a silent default: :meth:`Settings.load` collects
a :class:`Problem` naming the variable and keeps the default so that a running server
stays up. The CLI refuses to start (:meth:`Settings.check`, an error naming the
variable); the server logs each problem (:attr:`sidecar.rpc.server.SidecarServer.settings`)
and shows it as an ``Error`` in every provider's status
(:meth:`sidecar.rotation.keypool.KeyPool.status`, given the problems).

Nothing heavy is imported: a server builds this right after ``initialize``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import attrs

from sidecar import paths
from sidecar.limits import BodyLimits
from sidecar.limits import from_env as limits_from_env
from sidecar.sources import load_environment
from sidecar.team import TeamConfig, read_team
from sidecar.timeouts import Timeouts
from sidecar.timeouts import from_env as timeouts_from_env

__all__ = [
    "OAUTH_CALLBACK_PORT_ENV",
    "OAUTH_MAX_RETRY_WAIT_ENV",
    "OAUTH_TIMEOUT_ENV",
    "BadSetting",
    "Problem",
    "Settings",
    "read_port",
    "read_seconds",
]

OAUTH_CALLBACK_PORT_ENV = "LLM_SIDECAR_OAUTH_CALLBACK_PORT"
OAUTH_TIMEOUT_ENV = "LLM_SIDECAR_OAUTH_TIMEOUT"
OAUTH_MAX_RETRY_WAIT_ENV = "LLM_SIDECAR_OAUTH_MAX_RETRY_WAIT"


class BadSetting(ValueError):
    """A variable holds a value the sidecar cannot use; the message names it."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(message)
        self.variable = variable
        self.message = message


@attrs.frozen
class Problem:
    variable: str
    message: str  # names the variable; the value shortened, never a whole paste


def read_seconds(env: Mapping[str, str], name: str, default: float) -> float:
    """A non-negative number of seconds, ``default`` when unset; BadSetting otherwise."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise BadSetting(name, f"{name} must be a number of seconds, not {_shown(raw)!r}")
    return value


def read_port(env: Mapping[str, str], name: str) -> int | None:
    """A TCP port, None when unset; BadSetting otherwise."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise BadSetting(name, f"{name} must be a port number, not {_shown(raw)!r}")
    return int(raw)


def _shown(raw: str) -> str:
    # The user's typo, not a secret; but a key pasted into the wrong variable must not
    # end up whole in an error or a log.
    return raw if len(raw) <= 12 else raw[:8] + "…"


@attrs.frozen
class Settings:
    """What the environment asks of this process; see the module's docstring."""

    home: Path
    env: Mapping[str, str]  # the process environment over the home's .env
    timeouts: Timeouts
    limits: BodyLimits
    problems: tuple[Problem, ...] = ()
    team: TeamConfig | None = None  # a team's shared state on Redis; None: the files alone

    @classmethod
    def load(cls, home: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every setting once; bad values become :attr:`problems` (defaults kept)."""
        environ = os.environ if environ is None else environ
        home = paths.home(dict(environ)) if home is None else home
        env = load_environment(home, environ)
        problems: list[Problem] = []

        def report(variable: str, message: str) -> None:
            problems.append(Problem(variable, message))

        timeouts = timeouts_from_env(env, report)
        limits = limits_from_env(env, report)
        team = None
        try:
            team = read_team(env)
        except BadSetting as bad:
            report(bad.variable, bad.message)
        for check in (
            lambda: read_port(env, OAUTH_CALLBACK_PORT_ENV),
            lambda: read_seconds(env, OAUTH_TIMEOUT_ENV, 0.0),
            lambda: read_seconds(env, OAUTH_MAX_RETRY_WAIT_ENV, 0.0),
        ):
            try:
                check()
            except BadSetting as bad:
                report(bad.variable, bad.message)
        return cls(home, env, timeouts, limits, tuple(problems), team)

    def check(self) -> None:
        """Raise BadSetting for the first bad value: the CLI's policy at start-up."""
        if self.problems:
            first = self.problems[0]
            raise BadSetting(first.variable, first.message)
