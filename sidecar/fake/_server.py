"""The fake's asyncio server: routing, credentials, scripted answers, stream faults."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from itertools import accumulate
from typing import Any

from sidecar.fake._anthropic import Anthropic
from sidecar.fake._anthropic import error_body as anthropic_error_body
from sidecar.fake._hostile import Endless, StreamEncoder, endless_unit, line_head
from sidecar.fake._http import (
    LAST_CHUNK,
    Connection,
    HttpError,
    Request,
    Splitter,
    chunk,
    chunked_body,
    response_head,
)
from sidecar.fake._models import model_list
from sidecar.fake._oauth import AUTHORIZE_PATH, MANUAL_PATH, TOKEN_PATH, OAuthState
from sidecar.fake._openai import OpenAI
from sidecar.fake._ratelimit import configure_ratelimit
from sidecar.fake._render import Context, Flavour, Headers, blocks, dumpb, usage
from sidecar.fake._responses import Responses
from sidecar.fake._script import parse_script
from sidecar.fake._state import RecordedRequest, State, fingerprint
from sidecar.fake._steps import Drop, Error, Reply, Step

ANTHROPIC = Anthropic()
OPENAI = OpenAI()
RESPONSES = Responses()

_SSE_HEADERS: Headers = [
    ("content-type", "text/event-stream; charset=utf-8"),
    ("cache-control", "no-cache"),
    ("transfer-encoding", "chunked"),
]


def _base_headers(flavour: Flavour, ctx: Context) -> Headers:
    return [*flavour.base_headers(ctx), *ctx.extra_headers]


class _Progress:
    """How far a response got, readable after its task was cancelled."""

    __slots__ = ("events",)

    def __init__(self) -> None:
        self.events = 0


def _route(path: str) -> Flavour | None:
    if path == "/v1/messages":
        return ANTHROPIC
    # /v1/chat/completions, /chat/completions (base URLs that already end in /v1) and
    # Azure's /openai/deployments/<name>/chat/completions.
    if path.endswith("/chat/completions"):
        return OPENAI
    if path.endswith("/v1/responses"):  # OpenAI's Responses API: /v1/responses
        return RESPONSES
    return None


def _side_route(method: str, path: str, headers: Mapping[str, str]) -> tuple[Flavour, str] | None:
    """``GET …/models`` (Anthropic's when the request has an ``anthropic-version``, as
    its SDKs send, else OpenAI's) and ``POST /v1/messages/count_tokens``."""
    if method == "GET" and path.rstrip("/").endswith("/models"):
        return (ANTHROPIC if headers.get("anthropic-version") else OPENAI), "models"
    if method == "POST" and path == "/v1/messages/count_tokens":
        return ANTHROPIC, "count_tokens"
    return None


def side_answer(flavour: str, side: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON of a model listing or a token count, in the real APIs' shapes."""
    if side == "count_tokens":
        # About four characters a token, as a rough count does; at least one.
        return {"input_tokens": max(1, len(json.dumps(body.get("messages", []))) // 4)}
    return model_list(anthropic=flavour == "anthropic")


def _echo_key(step: Step, key: str) -> Step:
    """``step`` with ``{key}`` replaced by the request's key where it asks for an echo."""
    if isinstance(step, Error) and step.echo_key:
        body = step.body.replace("{key}", key) if isinstance(step.body, str) else step.body
        message = step.message.replace("{key}", key) if step.message is not None else None
        return dataclasses.replace(step, message=message, body=body)
    if isinstance(step, Reply) and step.echo_key:
        return dataclasses.replace(step, error_message=step.error_message.replace("{key}", key))
    return step


class FakeServer:
    def __init__(self, state: State, oauth: OAuthState | None = None) -> None:
        self.state = state
        self.oauth = oauth if oauth is not None else OAuthState(state)
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._connections = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._server = await asyncio.start_server(self._on_connection, host, port)
        bound = self._server.sockets[0].getsockname()
        return f"http://{bound[0]}:{bound[1]}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        # Python 3.11's Server.close leaves accepted connections open: end them here so a
        # stalled stream cannot outlive the fake. A connection accepted just before the
        # close may not have its handler running yet: sweep again until none is left.
        for _ in range(5):
            pending = list(self._handlers)
            if not pending:
                break
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=0.5)
            await asyncio.sleep(0)
        if self._server is not None:
            # Waits for every connection to detach; bounded, so stop() always returns.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    # -- connections --

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        conn = Connection(reader, writer, self._connections)
        self._connections += 1
        try:
            while True:
                request = await conn.read_request()
                if request is None or not await self._dispatch(conn, request):
                    break
        except HttpError as exc:
            body = f"{exc}\n".encode()
            head = response_head(
                400,
                [
                    ("content-type", "text/plain"),
                    ("content-length", str(len(body))),
                    ("connection", "close"),
                ],
            )
            with contextlib.suppress(ConnectionError, OSError):
                writer.write(head + body)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            # Only close() cancels handlers. Ending normally matters: on Python 3.11
            # asyncio's stream callback calls task.exception() and would log a traceback.
            # Abort rather than close: a graceful close waits to flush what a client that
            # stopped reading will never take, and the fake could not stop.
            writer.transport.abort()
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(
                ConnectionError, OSError, asyncio.CancelledError, TimeoutError
            ):
                await asyncio.wait_for(writer.wait_closed(), 2.0)

    async def _dispatch(self, conn: Connection, request: Request) -> bool:
        path = request.path
        if path.startswith("/_fake/"):
            return await self._control(conn, request)
        if path in (AUTHORIZE_PATH, MANUAL_PATH, TOKEN_PATH):
            return await self._oauth(conn, request)
        if (side := _side_route(request.method, path, request.headers)) is not None:
            return await self._provider(conn, request, side[0], side[1])
        flavour = _route(path)
        if flavour is None or request.method != "POST":
            record = self.state.record_request(
                method=request.method,
                path=path,
                flavour=None,
                model=None,
                key=None,
                headers=request.headers,
                body=None,
                stream=False,
                connection=conn.number,
                query=request.target.partition("?")[2],
            )
            body = dumpb(anthropic_error_body("not_found_error", "Not Found"))
            self.state.finish(record, "not_found", 404)
            return await self._send_json(conn, request, 404, [], body)
        return await self._provider(conn, request, flavour)

    async def _send_json(
        self,
        conn: Connection,
        request: Request,
        status: int,
        headers: Headers,
        body: bytes,
        content_type: str = "application/json",
    ) -> bool:
        all_headers = [("content-type", content_type)] if content_type else []
        all_headers += [*headers, ("content-length", str(len(body)))]
        keep = request.keep_alive
        if not keep:
            all_headers.append(("connection", "close"))
        # A HEAD answer has the GET's headers and no body (RFC 9110 9.3.2): bytes after
        # it would be read as the next answer on this connection.
        conn.writer.write(
            response_head(status, all_headers) + (b"" if request.method == "HEAD" else body)
        )
        await conn.writer.drain()
        return keep

    # -- control endpoints, for tests in other processes --

    async def _control(self, conn: Connection, request: Request) -> bool:
        status, reply = 200, dict[str, object](ok=True)
        route = (request.method, request.path)
        try:
            if route == ("POST", "/_fake/script"):
                value = json.loads(request.body or b"null")
                scripts = [parse_script(v) for v in (value if isinstance(value, list) else [value])]
                for script in scripts:
                    self.state.set_script(script)
            elif route == ("POST", "/_fake/ratelimit"):
                configure_ratelimit(self.state.ratelimit, json.loads(request.body or b"null"))
            elif route == ("POST", "/_fake/reset"):
                self.state.reset()
                self.oauth.reset()
            elif route == ("POST", "/_fake/oauth"):
                self.oauth.configure(json.loads(request.body or b"null"))
            elif route == ("GET", "/_fake/oauth"):
                return await self._send_json(conn, request, 200, [], dumpb(self.oauth.counters()))
            elif route == ("POST", "/_fake/oauth/issue"):
                options = json.loads(request.body or b"{}")
                expires = options.get("expiresIn") if isinstance(options, dict) else None
                pair = self.oauth.issue(int(expires) if expires is not None else None)
                issued = {
                    "access": pair.access,
                    "refresh": pair.refresh,
                    "expiresIn": pair.expires_in,
                }
                return await self._send_json(conn, request, 200, [], dumpb(issued))
            elif route == ("GET", "/_fake/log"):
                return await self._send_json(conn, request, 200, [], dumpb(self.state.log()))
            else:
                status, reply = 404, {"ok": False, "error": f"no control endpoint {route}"}
        except (ValueError, TypeError) as exc:  # bad JSON, bad script
            status, reply = 400, {"ok": False, "error": str(exc)}
        return await self._send_json(conn, request, status, [], dumpb(reply))

    # -- the OAuth authorization server --

    async def _oauth(self, conn: Connection, request: Request) -> bool:
        oauth = self.oauth
        route = (request.method, request.path)
        if route == ("GET", AUTHORIZE_PATH):
            answer = oauth.authorize(request.target)
        elif route == ("GET", MANUAL_PATH):
            answer = oauth.manual_page(request.target)
        elif route == ("POST", TOKEN_PATH):
            if oauth.delay:
                await asyncio.sleep(oauth.delay)  # widens the window of a refresh race
            answer = oauth.token(request.body)
        else:
            body = dumpb({"error": "invalid_request", "error_description": "method not allowed"})
            answer = (405, [], body, "application/json")
        status, headers, body, content_type = answer
        return await self._send_json(conn, request, status, headers, body, content_type)

    # -- provider endpoints --

    async def _provider(
        self, conn: Connection, request: Request, flavour: Flavour, side: str | None = None
    ) -> bool:
        """A model request, or with ``side`` a model listing or token count: the same
        credential checks and script steps (an Error step answers it as it would a
        message), a Reply step answered in that endpoint's format."""
        body: Any
        try:
            body = json.loads(request.body) if request.body else None
            parsed = True
        except ValueError:
            body, parsed = None, False
        fields: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
        key = flavour.credential(request.headers)
        model = flavour.model(fields, request.path)
        record = self.state.record_request(
            method=request.method,
            path=request.path,
            flavour=flavour.name,
            model=model,
            key=key,
            headers=request.headers,
            body=body,
            stream=fields.get("stream") is True,
            connection=conn.number,
            query=request.target.partition("?")[2],
        )
        ctx = Context(
            no=record.no,
            model=model or "unknown-model",
            body=fields,
            key_fingerprint=fingerprint(key) if key is not None else None,
            keep_alive=request.keep_alive,
        )
        step: Step | None
        label: str
        if key is None:
            label, step = "missing_key", flavour.missing_key()
        elif not self.state.knows(key):
            label, step = "unknown_key", flavour.unknown_key(fingerprint(key))
        elif not parsed:
            label, step = "invalid", Error("invalid_request_error", "Invalid JSON in request body")
        elif (
            side is None
            and (invalid := flavour.check_request(request.headers, body, request.path)) is not None
        ):
            label, step = "invalid", invalid
        else:
            step = self.state.next_step(key)
            if step is None:
                label, step = "unknown_key", flavour.unknown_key(fingerprint(key))
            else:
                if isinstance(step, Reply) and self.state.ratelimit.active:
                    step, ctx = self._rate_limited(flavour, key, step, ctx)
                label = "reply" if isinstance(step, Reply) else "drop"
                if isinstance(step, Error):
                    label = f"error:{step.type}"

        chosen: Step = _echo_key(step, key) if key is not None else step
        if isinstance(chosen, Reply) and chosen.headers:
            ctx = replace(ctx, extra_headers=(*ctx.extra_headers, *chosen.headers.items()))

        async def work(progress: _Progress) -> bool:
            if isinstance(chosen, Error):
                return await self._error(conn, request, record, flavour, ctx, chosen, label)
            if isinstance(chosen, Drop):
                return await self._drop(record, chosen.stall)
            if side is not None:
                answer = dumpb(side_answer(flavour.name, side, fields))
                self.state.finish(record, side, 200)
                return await self._send_json(conn, request, 200, flavour.base_headers(ctx), answer)
            if ctx.stream:
                return await self._stream(conn, record, flavour, ctx, chosen, progress)
            return await self._whole(conn, request, record, flavour, ctx, chosen)

        return await self._guarded(conn, record, work) and request.keep_alive

    def _rate_limited(
        self, flavour: Flavour, key: str, reply: Reply, ctx: Context
    ) -> tuple[Step, Context]:
        """The key's buckets decide: the reply with their headers, or 429/529 instead (the
        scripted step is spent either way)."""
        spent = usage(reply, ctx, blocks(reply, ctx))
        verdict = self.state.ratelimit.admit(
            key, flavour.name, spent.input, spent.output, ctx.model
        )
        if verdict.status == 200:
            return reply, replace(ctx, extra_headers=tuple(verdict.headers))
        kind = "rate_limit_error" if verdict.status == 429 else "overloaded_error"
        return Error(kind, headers=dict(verdict.headers)), ctx

    async def _guarded(
        self,
        conn: Connection,
        record: RecordedRequest,
        work: Callable[[_Progress], Awaitable[bool]],
    ) -> bool:
        """Run a response while watching for the client hanging up, so that a cancelled
        client is noticed at once, even in the middle of a stall."""
        progress = _Progress()
        writing = asyncio.ensure_future(work(progress))
        closed = asyncio.ensure_future(conn.wait_closed())
        try:
            await asyncio.wait({writing, closed}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            writing.cancel()
            closed.cancel()
            raise
        if writing.done():
            closed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await closed
            try:
                return writing.result()
            except (ConnectionError, OSError):
                self.state.record_event("connection_closed", record.no, progress.events)
                return False
        writing.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
            await writing
        self.state.record_event("connection_closed", record.no, progress.events)
        return False

    async def _error(
        self,
        conn: Connection,
        request: Request,
        record: RecordedRequest,
        flavour: Flavour,
        ctx: Context,
        err: Error,
        label: str,
    ) -> bool:
        if err.stall:
            await asyncio.sleep(err.stall)
        status, headers, body = flavour.error(err, ctx)
        self.state.finish(record, label, status)
        return await self._send_json(
            conn, request, status, _base_headers(flavour, ctx) + headers, body, content_type=""
        )

    async def _drop(self, record: RecordedRequest, stall: float) -> bool:
        if stall:
            await asyncio.sleep(stall)
        self.state.finish(record, "drop", None)
        self.state.record_event("dropped", record.no, 0)
        return False

    async def _whole(
        self,
        conn: Connection,
        request: Request,
        record: RecordedRequest,
        flavour: Flavour,
        ctx: Context,
        reply: Reply,
    ) -> bool:
        # A whole (non-streaming) answer knows only two faults: a stall before it and a
        # drop instead of it.
        if reply.stall:
            await asyncio.sleep(reply.stall)
        if reply.drop_after is not None:
            return await self._drop(record, 0)
        body = flavour.message(reply, ctx)
        self.state.finish(record, "reply", 200)
        return await self._send_json(conn, request, 200, _base_headers(flavour, ctx), body)

    async def _endless(
        self, writer: asyncio.StreamWriter, encoder: StreamEncoder, flavour: str, mode: Endless
    ) -> None:
        """Write the endless tail until the client hangs up (the write then fails, or
        _guarded cancels this): backpressure keeps the fake's own memory flat."""
        head = line_head(flavour, mode)
        if head:
            writer.write(chunk(encoder.encode(head)))
        unit = chunk(endless_unit(encoder, flavour, mode))
        while True:
            writer.write(unit)
            await writer.drain()

    async def _stream(
        self,
        conn: Connection,
        record: RecordedRequest,
        flavour: Flavour,
        ctx: Context,
        reply: Reply,
        progress: _Progress,
    ) -> bool:
        events = flavour.stream_events(reply, ctx)
        headers = _SSE_HEADERS + _base_headers(flavour, ctx)
        encoder = StreamEncoder(reply.gzip)
        if encoder.header is not None:
            headers.append(encoder.header)
        if not ctx.keep_alive:
            headers.append(("connection", "close"))
        head = response_head(200, headers)
        writer = conn.writer
        state = self.state

        if reply.plain and not state.timestamps:
            # The fast path: one buffer, one write. Recorded first: a client may read
            # the whole answer and look at the record before this task runs again.
            state.finish(record, "reply", 200)
            writer.write(head + chunked_body(events))
            await writer.drain()
            progress.events = len(events)
            state.record_event("completed", record.no, len(events))
            return True

        dropping = reply.drop_after is not None
        if reply.error_after is not None:
            cut = min(reply.error_after, len(events))
            events = [*events[:cut], flavour.midstream_error(reply.error_type, reply.error_message)]
        elif reply.drop_after is not None:
            events = events[: reply.drop_after]
        elif reply.endless_after is not None:
            events = events[: reply.endless_after]
        stall_at = min(reply.stall_after, len(events)) if reply.stall else -1
        ends = list(accumulate(len(e) for e in events))
        count = len(events)
        splitter = Splitter(reply.split, reply.seed)
        interval = reply.interval
        stamps = record.write_ns if state.timestamps else None
        sent = 0

        async def put(pieces: list[bytes]) -> None:
            nonlocal sent
            for piece in pieces:
                if interval and sent:
                    # Pace before a write, not after: an event's timestamp (taken when
                    # put returns) is then the moment it was written.
                    await writer.drain()
                    await asyncio.sleep(interval)
                writer.write(chunk(encoder.encode(piece)))
                sent += len(piece)
                while progress.events < count and ends[progress.events] <= sent:
                    progress.events += 1

        if stall_at == 0:
            await asyncio.sleep(reply.stall)  # before the status line: nothing at all
        state.finish(record, "reply", 200)  # before the first byte, as for every answer
        writer.write(head)
        for index, event in enumerate(events):
            if index == stall_at and index > 0:
                await put(splitter.flush())
                await writer.drain()
                await asyncio.sleep(reply.stall)
            await put(splitter.feed(event))
            if stamps is not None:
                stamps.append(time.perf_counter_ns())
            if index % 64 == 63:
                await writer.drain()  # backpressure from a slow reader
        if stall_at == count and count > 0:
            await put(splitter.flush())
            await writer.drain()
            await asyncio.sleep(reply.stall)
        await put(splitter.flush())
        if reply.endless_after is not None:
            await self._endless(writer, encoder, flavour.name, reply.endless)
        if dropping:
            await writer.drain()
            state.record_event("dropped", record.no, progress.events)
            return False
        writer.write(LAST_CHUNK)
        await writer.drain()
        state.record_event("completed", record.no, progress.events)
        return True
