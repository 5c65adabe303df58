"""Run an `ApiServer` in a background thread with its own event loop (for sync code)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from .server import ApiServer
from .store import Store

T = TypeVar("T")


class ServerThread:
    """A context manager: `with ServerThread() as server: ...` serves until the block ends.

    Every access to the store from the calling thread should go through `call()`,
    which runs a function in the server's loop.
    """

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="hean-apiserver", daemon=True)
        self._ready = threading.Event()
        self._server: ApiServer | None = None
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def boot() -> None:
            self._server = ApiServer(**self._kwargs)
            await self._server.start()

        try:
            self._loop.run_until_complete(boot())
        except BaseException as exc:  # handed over to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    def start(self) -> ServerThread:
        self._thread.start()
        self._ready.wait(timeout=30)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._server is not None and self._loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self._server.stop(), self._loop)
            future.result(timeout=30)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def server(self) -> ApiServer:
        assert self._server is not None, "the server is not started"
        return self._server

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def store(self) -> Store:
        return self.server.store

    def call(self, function: Callable[[], T]) -> T:
        """Run `function()` in the server's loop thread and return its result."""
        future: Future[T] = Future()

        def run() -> None:
            try:
                future.set_result(function())
            except BaseException as exc:
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return future.result(timeout=30)

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> None:
        self.server.write_kubeconfig(path, namespace)

    def load_crds(self, paths: Iterable[Path]) -> list[str]:
        paths = list(paths)
        return self.call(lambda: self.server.load_crds(paths))
