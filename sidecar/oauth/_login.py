"""Logins in progress: start, finish by callback or paste, cancel, time out; logout.

One :class:`LoginManager` per process (the server's, or the CLI's). A login
answers at once with the URL to open; it then ends exactly once, by

- the loopback callback (mode ``auto``), or a pasted ``code#state`` /
  redirect URL / ``code=…&state=…`` (either mode): the code is exchanged for
  tokens and saved as the profile ``<provider>:<profile>``;
- ``cancel``; or the timeout (five minutes unless ``LLM_SIDECAR_OAUTH_TIMEOUT``);
- or a new login for the same provider and profile, which supersedes it: the old
  one ends (reason ``superseded``) and its callback port is closed before the new
  one listens, so the new one gets the usual port and the two never race to
  write one profile.

The outcome is reported to ``on_event`` (the server sends it as
``sidecar/didEndLogin``) and to whoever awaits :meth:`LoginManager.wait` (the CLI).

Which redirect a login uses (``auto``):

1. an SSH session (``SSH_CONNECTION`` or ``SSH_TTY`` set): paste, since the
   user's browser is on another machine and cannot reach our loopback;
2. ``LLM_SIDECAR_OAUTH_CALLBACK_PORT`` set: that port, or paste when it is busy
   (the user chose the port, perhaps to forward it: another one would not work);
3. otherwise port 53692, or any free port when that one is busy, or paste when
   no loopback port can be opened at all.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Literal

import attrs

from sidecar.credentials import Credential
from sidecar.errors import InvalidParams, LoginError
from sidecar.oauth._callback import CallbackServer, Outcome
from sidecar.oauth._config import OAuthConfig, oauth_config
from sidecar.oauth._pkce import PKCE, authorize_url, new_pkce, parse_pasted
from sidecar.oauth._tokens import TokenClient
from sidecar.profiles import profile_id
from sidecar.rotation.keypool import KeyPool

if TYPE_CHECKING:
    import httpx

__all__ = ["Login", "LoginEvent", "LoginManager", "Mode", "profile_id"]

log = logging.getLogger(__name__)

Mode = Literal["auto", "paste"]
EventKind = Literal["succeeded", "failed", "cancelled", "superseded"]
_REMEMBERED = 32  # ended logins whose outcome a late loginComplete is told


@attrs.define(eq=False)
class Login:
    id: str
    provider: str
    profile_id: str
    mode: Mode
    config: OAuthConfig
    pkce: PKCE
    result: asyncio.Future[Credential]
    redirect_uri: str = ""
    url: str = ""
    note: str = ""  # why a login asked for auto runs as paste
    callback: CallbackServer | None = None
    finishing: bool = False
    timer: asyncio.TimerHandle | None = None

    @property
    def waiting_message(self) -> str:
        if self.mode == "auto":
            return (
                f"logging in to {self.provider}: finish signing in in your browser "
                "(or paste the code shown there)"
            )
        why = f"{self.note}: " if self.note else ""
        return f"logging in to {self.provider}: {why}sign in, then paste the code#state shown"


@attrs.frozen
class LoginEvent:
    login_id: str
    provider: str
    profile: str  # the profile's name (``default`` when none was given)
    kind: EventKind
    message: str
    credential: Credential | None = None
    # The failure was already the answer to a request (loginComplete): the server
    # need not show it a second time.
    answered: bool = False


class LoginManager:
    def __init__(
        self,
        keypool: KeyPool,
        env: Mapping[str, str],
        *,
        on_event: Callable[[LoginEvent], None] = lambda event: None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.keypool = keypool
        self.env = env  # the sidecar's settings' environment: endpoints and knobs
        self.on_event = on_event
        self._transport = transport
        self._logins: dict[str, Login] = {}
        # id -> (provider, how it ended), so that a late loginComplete is told why
        self._ended: collections.OrderedDict[str, tuple[str, str]] = collections.OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()

    # -- starting --

    async def start(
        self, provider: str, mode: str | None = None, profile: str | None = None
    ) -> Login:
        """Begin a login; it answers at once with the URL the user is to open."""
        config = oauth_config(provider, self.env)
        if mode not in (None, "auto", "paste"):
            raise InvalidParams("mode", 'must be "auto" or "paste"')
        pid = profile_id(provider, profile)
        await self._supersede(provider, pid)
        login = Login(
            id=f"l-{secrets.token_hex(6)}",
            provider=provider,
            profile_id=pid,
            mode="paste" if mode == "paste" else "auto",
            config=config,
            pkce=new_pkce(),
            result=asyncio.get_running_loop().create_future(),
        )
        if login.mode == "auto":
            await self._listen(login)
        login.redirect_uri = (
            login.callback.redirect_uri
            if login.callback is not None
            else config.manual_redirect_url
        )
        login.url = authorize_url(config, login.redirect_uri, login.pkce)
        self._logins[login.id] = login
        login.timer = asyncio.get_running_loop().call_later(config.timeout, self._time_out, login)
        log.info("login %s to %s started (%s)", login.id, provider, login.mode)
        return login

    async def _supersede(self, provider: str, pid: str) -> None:
        """End the pending logins of this profile, and free their callback ports."""
        for old in [x for x in self._logins.values() if x.profile_id == pid]:
            err = _error(
                old,
                f"this login was superseded by a new login to {provider} (profile {pid}): "
                "finish that one instead",
                "superseded",
            )
            message = f"login to {provider} superseded by a new login for profile {pid}"
            self._end(old, "superseded", message, error=err)
            if old.callback is not None:
                await old.callback.close()

    async def _listen(self, login: Login) -> None:
        """Open the loopback callback, or fall back to paste (see the module's rules)."""
        config = login.config
        if config.remote:
            login.mode, login.note = "paste", "this is a remote (SSH) session"
            return

        async def on_code(code: str) -> Outcome:
            try:
                await self._finish(login, code)
            except LoginError as err:
                return False, f"{err.message}."
            return True, f"You are logged in to {login.provider}. You can close this tab."

        async def on_denied(error: str) -> Outcome:
            err = _error(login, f"the sign-in was not completed ({_plain(error)})", "denied")
            self._end(login, "failed", err.message, error=err)
            return False, f"The login to {login.provider} was not completed: start it again."

        server = CallbackServer(login.pkce.state, on_code, on_denied)
        ports = [config.callback_port] if config.port_explicit else [config.callback_port, 0]
        for port in ports:
            try:
                await server.start(port)
            except OSError as exc:
                log.info("login callback: port %d unavailable (%s)", port, exc.strerror)
                continue
            login.callback = server
            return
        login.mode, login.note = "paste", f"port {config.callback_port} is busy"

    # -- finishing --

    async def complete(self, login_id: str, text: str) -> Credential:
        """Finish a login with what the user pasted; the saved credential."""
        login = self._get(login_id)
        try:
            pasted = parse_pasted(text)
        except ValueError as exc:
            raise InvalidParams("input", str(exc)) from None
        if not secrets.compare_digest(pasted.state, login.pkce.state):
            raise _error(
                login,
                "that code belongs to another login (its state does not match this one): "
                "paste the code shown for this login, or start again",
                "state_mismatch",
            )
        return await self._finish(login, pasted.code, answered=True)

    async def _finish(self, login: Login, code: str, *, answered: bool = False) -> Credential:
        if login.finishing or login.result.done():
            raise _error(login, "this login is already being completed", "busy")
        login.finishing = True
        # Shielded: a request cancelled meanwhile ($/cancelRequest, Ctrl-C) must not leave
        # the login half-finished; the user did sign in, so it completes all the same.
        task = asyncio.ensure_future(self._exchange_and_save(login, code, answered))
        # Its failure is reported through the login's result: never "never retrieved".
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return await asyncio.shield(task)

    async def _exchange_and_save(self, login: Login, code: str, answered: bool) -> Credential:
        client = TokenClient(login.config, transport=self._transport)
        try:
            tokens = await asyncio.to_thread(
                client.exchange, code, login.pkce.state, login.pkce.verifier, login.redirect_uri
            )
        except Exception as exc:
            # The code is spent either way: this login is over.
            if isinstance(exc, LoginError):
                message, reason = exc.message, _reason(exc)
            else:  # e.g. a token URL httpx cannot use
                message, reason = f"the token request failed ({type(exc).__name__})", "failed"
            failure = _error(login, f"logging in failed: {message}", reason)
            self._end(login, "failed", failure.message, error=failure, answered=answered)
            raise failure from None
        if login.result.done():  # cancelled while the exchange ran: keep nothing
            raise _error(login, "the login was cancelled", "cancelled")
        cred = Credential(
            id=login.profile_id,
            provider=login.provider,
            kind="oauth",
            source="profile",
            secret=tokens.access,
            refresh=tokens.refresh,
            expires_at=tokens.expires_at,
        )
        try:
            self.keypool.save_login(cred)
        except Exception as exc:
            message = getattr(exc, "message", None) or type(exc).__name__
            failure = _error(login, f"the login could not be saved: {message}", "store")
            self._end(login, "failed", failure.message, error=failure, answered=answered)
            raise failure from None
        self._end(
            login,
            "succeeded",
            f"logged in to {login.provider} ({cred.fingerprint}, profile {cred.id})",
            credential=cred,
        )
        return cred

    async def cancel(self, login_id: str) -> bool:
        """Stop a login and close its callback server; False when it was not running."""
        login = self._logins.get(login_id)
        if login is None:
            return False
        err = _error(login, "the login was cancelled", "cancelled")
        self._end(login, "cancelled", f"login to {login.provider} cancelled", error=err)
        if login.callback is not None:
            await login.callback.close()
        return True

    async def wait(self, login_id: str) -> Credential:
        """The credential once the login succeeds; its LoginError when it does not."""
        return await asyncio.shield(self._get(login_id).result)

    def running(self) -> list[Login]:
        return list(self._logins.values())

    async def aclose(self) -> None:
        for login in list(self._logins.values()):
            await self.cancel(login.id)
        await asyncio.gather(*self._closing, return_exceptions=True)

    def _time_out(self, login: Login) -> None:
        if login.finishing:
            return  # the exchange is under way and has its own timeouts
        minutes = login.config.timeout / 60
        span = f"{minutes:g} minutes" if minutes >= 1 else f"{login.config.timeout:g} s"
        err = _error(login, f"the login to {login.provider} timed out after {span}", "timeout")
        self._end(login, "failed", f"{err.message}: start it again", error=err)

    def _end(
        self,
        login: Login,
        kind: EventKind,
        message: str,
        *,
        credential: Credential | None = None,
        error: LoginError | None = None,
        answered: bool = False,
    ) -> None:
        """End ``login`` exactly once: result, callback closed, event reported."""
        if login.result.done():
            return
        if login.timer is not None:
            login.timer.cancel()
        if credential is not None:
            login.result.set_result(credential)
        else:
            login.result.set_exception(error or _error(login, message, "failed"))
            login.result.exception()  # retrieved: nobody need await a failed login
        self._logins.pop(login.id, None)
        self._ended[login.id] = (login.provider, message)
        while len(self._ended) > _REMEMBERED:
            self._ended.popitem(last=False)
        if login.callback is not None:
            # Closing the listening socket is immediate; the connection being answered
            # (the callback that finished this login) completes its page first.
            login.callback.stop_listening()
            task = asyncio.get_running_loop().create_task(login.callback.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        log.info("login %s to %s %s", login.id, login.provider, kind)
        profile = login.profile_id.partition(":")[2]
        event = LoginEvent(login.id, login.provider, profile, kind, message, credential, answered)
        try:
            self.on_event(event)
        except Exception:  # reporting must not undo the login
            log.exception("login event handler failed")

    def _get(self, login_id: str) -> Login:
        login = self._logins.get(login_id)
        if login is not None:
            return login
        ended = self._ended.get(login_id)
        if ended is not None:
            provider, how = ended
            raise LoginError(
                f"that login has ended ({how}); start a new one",
                {"provider": provider, "reason": "ended"},
            )
        raise InvalidParams("loginId", "no login in progress with this id")

    # -- logout --

    def logout(self, provider: str, profile: str | None = None) -> Credential | None:
        """Remove the login profile; the removed credential, None when there was none."""
        oauth_config(provider, self.env)  # only OAuth providers have logins
        return self.keypool.logout(provider, profile_id(provider, profile))


def _error(login: Login, message: str, reason: str) -> LoginError:
    return LoginError(message, {"provider": login.provider, "reason": reason})


def _reason(err: LoginError) -> str:
    reason = (err.data or {}).get("reason")
    return reason if isinstance(reason, str) else "failed"


def _plain(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\- ]", "", text)[:60] or "unknown error"
