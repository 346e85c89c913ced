"""The gateway's HTTP server: aiohttp, and the checks every request passes first.

Why aiohttp: one well-kept package (with its C parser) that is both an asyncio
server and nothing more; its ``StreamResponse.write`` sends exactly the bytes it is
given, chunk by chunk, so the provider's SSE reaches the client unaltered and at once;
with ``handler_cancellation`` a client that hangs up cancels its handler wherever it
waits (even while the gateway still holds the upstream answer back), which closes the
upstream request through httpx's context managers. Starlette on uvicorn needs two
packages and an ASGI layer, and tells a streaming response of a disconnect only
through a separate ``receive`` listener.

Checks, in order: the ``Host`` is a loopback name with the gateway's port (a web page
that re-binds its own DNS name to 127.0.0.1 is refused); the gateway token is shown as
``x-api-key`` or ``Authorization: Bearer``; the provider is known; the body is within
the cap. No response carries a CORS header, so no browser page can read one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import signal

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from sidecar.gateway._proxy import Proxy
from sidecar.gateway._routes import parse_route, shape_for_path
from sidecar.gateway._shapes import error_body
from sidecar.rotation.classify import GATEWAY_REFUSAL_HEADER

__all__ = ["DEFAULT_MAX_BODY", "make_app", "serve"]

log = logging.getLogger("sidecar.gateway")

DEFAULT_MAX_BODY = 32 * 1024 * 1024  # Anthropic's own request limit is 32 MB
SHUTDOWN_GRACE = 10.0  # seconds a stream in flight may take to end after SIGTERM


def _loopback_name(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost":  # not *.localhost: a name a page could be served under
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_allowed(header: str | None, port: int) -> bool:
    """``Host: 127.0.0.1:8765``, ``localhost:8765`` or ``[::1]:8765``, and nothing else."""
    if not header:
        return False
    name, sep, port_text = header.rpartition(":")
    if not sep or (name.endswith(":") and not name.startswith("[")):
        return False  # no port, or a bare IPv6 address
    return port_text == str(port) and _loopback_name(name)


def _presented_token(request: web.Request) -> str | None:
    key = request.headers.get("x-api-key") or request.headers.get("api-key")
    if key:
        return key.strip()
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _error(shape: str, status: int, error_type: str, message: str) -> web.Response:
    return web.Response(
        status=status,
        body=error_body(shape, error_type, f"llm-sidecar gateway: {message}"),
        content_type="application/json",
        # Our own refusal, not the provider's: a sidecar pointed here keeps its keys.
        headers={GATEWAY_REFUSAL_HEADER: "refused"},
    )


def make_app(
    proxy: Proxy,
    *,
    token: str,
    port: int,
    check_host: bool = True,
    max_body: int = DEFAULT_MAX_BODY,
) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        shape = shape_for_path(request.path)
        if check_host and not host_allowed(request.host, port):
            return _error(shape, 403, "permission_error", "this Host is not the gateway's")
        presented = _presented_token(request)
        if presented is None or not hmac.compare_digest(presented.encode(), token.encode()):
            return _error(
                shape,
                401,
                "authentication_error",
                "show the gateway token (llm-sidecar gateway env) as x-api-key or a bearer token",
            )
        route = parse_route(request.path, request.method)
        if route is None:
            return _error(shape, 404, "not_found_error", "no such route: use /{provider}/v1/…")
        if request.content_length is not None and request.content_length > max_body:
            return _error(route.shape, 413, "request_too_large", "the request body is too large")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _error(route.shape, 413, "request_too_large", "the request body is too large")
        except RequestPayloadError:  # a compressed body that does not inflate
            return _error(
                route.shape,
                400,
                "invalid_request_error",
                "the request body could not be decoded as its Content-Encoding says",
            )
        return await proxy.handle(request, route, body)

    app = web.Application(client_max_size=max_body)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    stop: asyncio.Event | None = None,
    grace: float = SHUTDOWN_GRACE,
) -> None:
    """Serve until SIGINT or SIGTERM (or ``stop`` is set, for tests); then stop accepting
    and let streams in flight end, within ``grace`` seconds."""
    # handler_cancellation: a client that hangs up cancels its handler, which closes
    # the upstream request (aiohttp leaves this off by default since 3.9).
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=grace)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C raises instead
                loop.add_signal_handler(sig, stop.set)
    log.info("llm-sidecar gateway listening on http://%s:%d", host, port)
    try:
        await stop.wait()
    finally:
        log.info("llm-sidecar gateway stopping")
        await runner.cleanup()
