"""The floor for the gateway: a bare aiohttp pass-through, the same server and client
library as ``llm-sidecar gateway``, without its checks, pool, holding or scrubbing.

``python -m bench.gateway_floor --port P --upstream URL --anthropic-key K --openai-key K``
serves ``/{anthropic|openai}/v1/…`` by sending the rest of the path to ``URL`` with
that provider's key and streaming the answer back as it comes. Whatever the gateway
adds beyond this to the time to first byte is its own cost; what this adds over a
direct call is the price of a second Python process and hop on this machine.
"""

from __future__ import annotations

import argparse

import aiohttp
from aiohttp import web

__all__ = ["make_app"]

_DROP = frozenset({"host", "content-length", "x-api-key", "authorization", "accept-encoding"})


def make_app(upstream: str, keys: dict[str, dict[str, str]]) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        provider, _, rest = request.path.lstrip("/").partition("/")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP}
        headers.update(keys[provider])
        session: aiohttp.ClientSession = request.app["session"]
        body = await request.read()
        async with session.request(
            request.method, f"{upstream}/{rest}", headers=headers, data=body
        ) as resp:
            out = web.StreamResponse(
                status=resp.status,
                headers={"content-type": resp.headers.get("content-type", "")},
            )
            await out.prepare(request)
            while chunk := await resp.content.readany():
                await out.write(chunk)
            await out.write_eof()
            return out

    async def session(app: web.Application) -> object:
        app["session"] = aiohttp.ClientSession()
        yield
        await app["session"].close()

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    app.cleanup_ctx.append(session)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway_floor")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--anthropic-key", required=True)
    parser.add_argument("--openai-key", required=True)
    args = parser.parse_args()
    keys = {
        "anthropic": {"x-api-key": args.anthropic_key},
        "openai": {"authorization": f"Bearer {args.openai_key}"},
    }
    app = make_app(args.upstream, keys)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
