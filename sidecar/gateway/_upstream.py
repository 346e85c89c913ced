"""The gateway's side towards the provider: one aiohttp client session, the headers that
go up and come back, and what a broken connection is called.

Why aiohttp and not httpx (which the stdio sidecar uses): the gateway relays every byte
of every answer, and httpx's HTTP/1.1 parser (h11) is pure Python, one event per
HTTP chunk; it was a third of the gateway's time on a fast stream. aiohttp's parser is
C (llhttp), and ``StreamReader.readany`` hands over whatever has arrived in one piece,
so a gateway that falls behind catches up in larger pieces instead of more of them.
The server side is aiohttp already (``_app``): one library for both.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Mapping

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from multidict import CIMultiDictProxy
from yarl import URL

from sidecar.credentials import Credential
from sidecar.gateway._routes import Route, credential_headers
from sidecar.providers import UpstreamFailure
from sidecar.providers._errors import transport_failure
from sidecar.providers._sse import USER_AGENT
from sidecar.timeouts import Timeouts

__all__ = [
    "UPSTREAM_ERRORS",
    "Upstream",
    "lost",
    "request_headers",
    "response_headers",
    "upstream",
]

# What a request to the provider raises when the connection fails, times out or drops.
UPSTREAM_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)

# Headers that describe one hop, the client's credentials, or what only we negotiate.
_DROP_REQUEST = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
        "authorization",
        "x-api-key",
        "api-key",
        # The client's own key's organization and project: a pool key of another one
        # gets 401 mismatched_organization, which would evict it.
        "openai-organization",
        "openai-project",
        "cookie",
        "accept-encoding",
        "user-agent",
        "anthropic-beta",
        "origin",
        "referer",
    }
)
# The request encodings aiohttp's server decodes before the gateway reads the body
# (aiohttp.http_parser: the exact lower-cased value); any other passes through as sent.
DECODED_REQUEST_ENCODINGS = frozenset({"gzip", "deflate", "br", "zstd"})

_DROP_RESPONSE = frozenset(
    {
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-encoding",
        "set-cookie",
        "server",
        "date",
    }
)


class Upstream:
    """The client every gateway request to a provider goes through (pooled connections)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> aiohttp.ClientResponse:
        """The provider's answer once its status and headers came; the body is read after."""
        proxy, proxy_auth = _proxy_for(URL(url).origin())
        return await self.session.request(
            method,
            url,
            headers=headers,
            data=body or None,
            allow_redirects=False,
            proxy=proxy,
            proxy_auth=proxy_auth,
        )


@contextlib.asynccontextmanager
async def upstream(timeouts: Timeouts) -> AsyncIterator[Upstream]:
    import httpx  # only for its TLS context: the same CA bundle as the sidecar's requests

    ssl = httpx.create_ssl_context(trust_env=True)
    connector = aiohttp.TCPConnector(limit=200, limit_per_host=0, ssl=ssl)
    timeout = aiohttp.ClientTimeout(
        total=None,
        connect=timeouts.pool + timeouts.connect,  # a free connection, then a new one
        sock_connect=timeouts.connect,
        sock_read=timeouts.read,  # the longest silence between two bytes
    )
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        # Not trust_env: it costs two thread hops per request (~/.netrc, whose passwords
        # must not ride along anyway, and the proxy lookup); proxies are looked up once
        # per origin below instead.
        trust_env=False,
        # The client's own headers decide; aiohttp adds no Content-Type or Accept of its own.
        skip_auto_headers=("Content-Type", "Accept"),
        auto_decompress=True,  # should a host compress anyway, the scrubber sees plain bytes
    ) as session:
        yield Upstream(session)


@functools.lru_cache(maxsize=64)
def _proxy_for(origin: URL) -> tuple[URL | None, aiohttp.BasicAuth | None]:
    """``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` for one origin, as httpx honoured them."""
    try:
        return get_env_proxy_for_url(origin)
    except LookupError:
        return None, None


def request_headers(
    route: Route, env: Mapping[str, str], cred: Credential, client: CIMultiDictProxy[str]
) -> dict[str, str]:
    """The client's headers with its credentials, hop headers and agent replaced by ours."""
    # Lower-cased: a client's "Anthropic-Version" and ours must not both go out.
    headers = {k.lower(): v for k, v in client.items() if k.lower() not in _DROP_REQUEST}
    if headers.get("content-encoding", "").lower() in DECODED_REQUEST_ENCODINGS:
        # The body we send is the decoded one: under the client's gzip header the
        # provider would try to inflate plain JSON and answer 400.
        del headers["content-encoding"]
    # Every anthropic-beta line: repeated header lines are one comma-separated list.
    betas = ",".join(client.getall("anthropic-beta", ()))
    ours = credential_headers(route, env, cred, betas)
    if "anthropic-version" in headers:
        del ours["anthropic-version"]  # the body was written for the client's version
    headers.update(ours)
    # Our own product token after the client's: honest about both, borrowing neither.
    client_agent = client.get("user-agent", "").strip()
    headers["user-agent"] = f"{client_agent} {USER_AGENT}" if client_agent else USER_AGENT
    # Identity: the bytes the client gets are the provider's, not re-encoded by us.
    headers["accept-encoding"] = "identity"
    return headers


def response_headers(headers: CIMultiDictProxy[str]) -> list[tuple[str, str]]:
    # No CORS header ever leaves the gateway: a web page must not read the answers.
    return [
        (k, v)
        for k, v in headers.items()
        if k.lower() not in _DROP_RESPONSE and not k.lower().startswith("access-control-")
    ]


def lost(exc: BaseException, cred: Credential, *, mid_stream: bool = False) -> UpstreamFailure:
    """A connection that failed or dropped: replayed like the engine does when nothing
    went out yet."""
    return transport_failure(exc, cred.secret, mid_stream=mid_stream)
