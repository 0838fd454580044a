"""One warm MCP client session per configured server (the official ``mcp`` SDK).

A server starts on first use, stays open while it is used, and closes after
``idle`` seconds without a call. One that dies (its process exits, its
connection breaks) is started again by the next call; a call that was under
way fails with what happened. A server that cannot start fails the call with a
sentence naming its command or URL and the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import mcp
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from aos_stdskills.aos_mcp.config import ServerConfig

START_TIMEOUT = 30.0
"""Seconds a server has to start and answer its tool list."""
BACKOFF_START = 0.5
BACKOFF_CAP = 30.0
"""After a failed start, calls fail at once for this long (doubling per failure,
capped) before the next try: a server that cannot start is not spawned per call."""
Status = Literal["idle", "starting", "ready", "failed"]


class ServerDown(Exception):
    """The server could not start, or went away during a call (the message says which)."""


@dataclass(frozen=True)
class ToolInfo:
    name: str
    description: str
    input_schema: dict[str, Any]

    @property
    def summary(self) -> str:
        """The description's first line: what ``mcp list`` shows."""
        return self.description.strip().split("\n", 1)[0]


def describe(exc: BaseException) -> str:
    """One sentence for an exception, however deep in an ExceptionGroup."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, ServerDown) else f"{type(exc).__name__}: {text}"


def server_environment(extra: dict[str, str]) -> dict[str, str]:
    """A stdio server's environment: the service's, without what is the kernel's
    (``AOS_*``: its token and sockets), plus the entry's ``env``."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("AOS_")}
    return {**inherited, **extra}


class Server:
    def __init__(self, config: ServerConfig, idle: float) -> None:
        self.config = config
        self.idle = idle
        self.status: Status = "idle"
        self.error: str | None = None
        self.starts = 0
        self.tools: list[ToolInfo] = []
        self._client: mcp.Client | None = None
        self._holder: asyncio.Task[None] | None = None
        self._done = asyncio.Event()
        self._lock = asyncio.Lock()
        self._last_use = time.monotonic()
        self._backoff = BACKOFF_START
        self._retry_at = 0.0

    @property
    def name(self) -> str:
        return self.config.name

    def offered(self) -> list[ToolInfo]:
        return [t for t in self.tools if self.config.offers(t.name)]

    async def client(self) -> mcp.Client:
        """The live session, started (or started again) if need be."""
        self._last_use = time.monotonic()
        async with self._lock:
            if self._client is not None and self._holder is not None and not self._holder.done():
                return self._client
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                raise ServerDown(f"{self.error}; the next try is in {wait:.1f} s")
            try:
                await self._start()
            except ServerDown:
                self._retry_at = time.monotonic() + self._backoff
                self._backoff = min(self._backoff * 2, BACKOFF_CAP)
                raise
            self._backoff, self._retry_at = BACKOFF_START, 0.0
            assert self._client is not None
            return self._client

    def broken(self, why: str) -> None:
        """A call found the session unusable: the next call starts it again."""
        self.status, self.error = "failed", why
        self._client = None
        self._done.set()

    async def close(self) -> None:
        self._done.set()
        if self._holder is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._holder, 10)

    async def _start(self) -> None:
        self.status, self.starts = "starting", self.starts + 1
        self._done = asyncio.Event()
        opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._holder = asyncio.get_running_loop().create_task(self._hold(opened))
        try:
            await asyncio.wait_for(asyncio.shield(opened), START_TIMEOUT)
        except TimeoutError:
            self._done.set()
            self.status = "failed"
            self.error = (
                f"MCP server {self.name} did not start within {START_TIMEOUT:g} s "
                f"({self.config.describe()})"
            )
            raise ServerDown(self.error) from None
        except ServerDown as exc:
            self.status, self.error = "failed", str(exc)
            raise

    async def _hold(self, opened: asyncio.Future[None]) -> None:
        """Open the session, keep it until closed, idle or broken (one task: the
        SDK's sessions must be entered and left in the same task). A holder that
        a newer one replaced leaves the server's state alone."""
        done = self._done
        mine = asyncio.current_task()
        try:
            async with self._transport() as target, mcp.Client(target, mode="legacy") as client:
                self.tools = await _list_tools(client)
                self._client = client
                self.status, self.error = "ready", None
                opened.set_result(None)
                while not done.is_set():
                    left = self._last_use + self.idle - time.monotonic()
                    if left <= 0:
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(done.wait(), left)
        except BaseException as exc:
            if not opened.done():
                what = self.config.describe()
                opened.set_exception(
                    ServerDown(f"MCP server {self.name} did not start ({what}): {describe(exc)}")
                )
            elif self._holder is mine and self.status == "ready":
                self.status, self.error = "failed", describe(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            if self._holder is mine:
                self._client = None
                if self.status == "ready":
                    self.status = "idle"

    @contextlib.asynccontextmanager
    async def _transport(self) -> AsyncIterator[Any]:
        """What ``mcp.Client`` connects to: stdio parameters, or a Streamable HTTP
        transport carrying the entry's headers."""
        config = self.config
        if config.transport == "stdio":
            yield mcp.StdioServerParameters(
                command=config.command,
                args=list(config.args),
                env=server_environment(dict(config.env)),
                cwd=config.cwd,
            )
            return
        async with create_mcp_http_client(headers=dict(config.headers)) as http:
            yield streamable_http_client(config.url, http_client=http)


async def all_pages(page: Callable[[str | None], Awaitable[Any]], items: str) -> list[Any]:
    """Every item of a paginated MCP listing: ``page(cursor)`` fetches one page,
    ``items`` names its list (``tools``, ``resources``, ``prompts``)."""
    found: list[Any] = []
    cursor: str | None = None
    while True:
        result = await page(cursor)
        found += getattr(result, items)
        cursor = result.next_cursor
        if not cursor:
            return found


async def _list_tools(client: mcp.Client) -> list[ToolInfo]:
    tools = await all_pages(lambda cursor: client.list_tools(cursor=cursor), "tools")
    return [ToolInfo(t.name, t.description or "", dict(t.input_schema)) for t in tools]
