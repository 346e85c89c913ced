"""The provider stand-in in a process of its own, so that it never competes with
the measuring client for one interpreter lock.

``python -m bench.fakehost [--timestamps]`` runs :class:`sidecar.fake.FakeProvider`,
prints ``{"url": ...}`` and then answers one JSON command per stdin line:

- ``{"op": "script", "key", "steps", "default"}``: the fake's per-key script (JSON steps).
- ``{"op": "plan", "steps"}``: steps answered in order to the next requests, whatever
  known key they carry, before the keys' own scripts (a rate limit "at random").
- ``{"op": "records", "since": n}``: requests from number ``n`` on, each with its
  ``write_ns`` stamps, ``finish_ns`` (when its status line or error was decided) and
  ``tag`` (the text of its last message).
- ``{"op": "ratelimit", ...}``: the fake's rate limits, as ``POST /_fake/ratelimit``
  takes them (``{"limits": {...}}`` for every key; buckets start full).
- ``{"op": "admissions", "since": n}``: the rate limiter's decisions from number ``n``
  on, each ``[t_ns, key fingerprint, model, input tokens, output tokens, status]`` with
  ``t_ns`` on ``time.perf_counter_ns()``: enough to replay the buckets
  (``bench/goodput_retry.py``).
- ``{"op": "reset"}``: back to no scripts, no rate limits and an empty record.

It exits when stdin closes. :class:`FakeHost` drives it from asyncio.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from bench.lsp import REPO_ROOT

__all__ = ["FakeHost", "Record"]

Record = dict[str, Any]  # no, key, status, step, write_ns, finish_ns, tag


def _tag(body: Any) -> str | None:
    """The last user message's text: how the benchmarks tell their streams apart."""
    try:
        content = body["messages"][-1]["content"]
        if isinstance(content, list):  # content blocks, as LiteLLM sends a plain string
            content = content[0]["text"]
    except (TypeError, KeyError, IndexError):
        return None
    # The first 64 characters: enough for every benchmark's tags, and a large prompt
    # (the goodput benchmark's) does not travel back whole with every record.
    return content[:64] if isinstance(content, str) else None


def _serve(timestamps: bool) -> None:
    from sidecar.fake import FakeProvider, parse_step

    fake = FakeProvider(timestamps=timestamps).start()
    state = fake._state
    finish_ns: dict[int, int] = {}
    plan: collections.deque[Any] = collections.deque()
    lock = threading.Lock()
    original_finish, original_next_step = state.finish, state.next_step

    def finish(record: Any, step: str, status: int | None) -> None:
        finish_ns[record.no] = time.perf_counter_ns()
        original_finish(record, step, status)

    def next_step(key: str) -> Any:
        with lock:
            if plan and state.knows(key):
                return plan.popleft()
        return original_next_step(key)

    state.finish = finish  # type: ignore[method-assign]
    state.next_step = next_step  # type: ignore[method-assign]

    from sidecar.fingerprints import fingerprint

    admissions: list[list[Any]] = []
    original_admit = fake.ratelimit.admit

    def admit(
        key: str, flavour: str, input_tokens: int, output_tokens: int, model: Any = None
    ) -> Any:
        verdict = original_admit(key, flavour, input_tokens, output_tokens, model)
        with lock:
            admissions.append(
                [
                    time.perf_counter_ns(),
                    fingerprint(key),
                    model,
                    input_tokens,
                    output_tokens,
                    verdict.status,
                ]
            )
        return verdict

    fake.ratelimit.admit = admit  # type: ignore[method-assign]

    out = sys.stdout
    out.write(json.dumps({"url": fake.url}) + "\n")
    out.flush()
    for line in sys.stdin:
        command = json.loads(line)
        op = command["op"]
        reply: Any = {"ok": True}
        if op == "script":
            fake.script(command["key"], command.get("steps", ()), command.get("default"))
        elif op == "plan":
            with lock:
                plan.clear()
                plan.extend(parse_step(s) for s in command["steps"])
        elif op == "records":
            reply = [
                {
                    "no": r.no,
                    "key": r.key,
                    "status": r.status,
                    "step": r.step,
                    "write_ns": r.write_ns,
                    "finish_ns": finish_ns.get(r.no),
                    "tag": _tag(r.body),
                }
                for r in fake.requests[command.get("since", 0) :]
            ]
        elif op == "admissions":
            with lock:
                reply = admissions[command.get("since", 0) :]
        elif op == "ratelimit":
            from sidecar.fake._ratelimit import configure_ratelimit

            configure_ratelimit(fake.ratelimit, {k: v for k, v in command.items() if k != "op"})
        elif op == "reset":
            fake.reset()
            with lock:
                plan.clear()
                admissions.clear()
            finish_ns.clear()
        else:
            reply = {"ok": False, "error": f"unknown op {op!r}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    fake.stop()


class FakeHost:
    """``async with FakeHost(timestamps=True) as fake: fake.url, await fake.script(...)``."""

    def __init__(self, *, timestamps: bool = False) -> None:
        self.timestamps = timestamps
        self.url = ""
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> FakeHost:
        args = [sys.executable, "-m", "bench.fakehost"] + (
            ["--timestamps"] if self.timestamps else []
        )
        self._proc = await asyncio.create_subprocess_exec(
            *args, stdin=-1, stdout=-1, limit=1 << 30, cwd=REPO_ROOT
        )
        self.url = (await self._reply())["url"]
        return self

    async def __aexit__(self, *exc: object) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    async def _reply(self) -> Any:
        assert self._proc is not None and self._proc.stdout is not None
        line = await self._proc.stdout.readline()
        if not line:
            raise ConnectionError("the fake host exited")
        return json.loads(line)

    async def _call(self, **command: Any) -> Any:
        assert self._proc is not None and self._proc.stdin is not None
        async with self._lock:
            self._proc.stdin.write(json.dumps(command).encode() + b"\n")
            await self._proc.stdin.drain()
            return await self._reply()

    async def script(
        self, key: str, steps: Sequence[dict[str, Any]] = (), default: dict[str, Any] | None = None
    ) -> None:
        await self._call(op="script", key=key, steps=list(steps), default=default)

    async def plan(self, steps: Sequence[dict[str, Any]]) -> None:
        await self._call(op="plan", steps=list(steps))

    async def records(self, since: int = 0) -> list[Record]:
        result: list[Record] = await self._call(op="records", since=since)
        return result

    async def admissions(self, since: int = 0) -> list[list[Any]]:
        result: list[list[Any]] = await self._call(op="admissions", since=since)
        return result

    async def ratelimit(self, **settings: Any) -> None:
        await self._call(op="ratelimit", **settings)

    async def reset(self) -> None:
        await self._call(op="reset")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fakehost", description=__doc__)
    parser.add_argument("--timestamps", action="store_true")
    _serve(parser.parse_args(argv).timestamps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
