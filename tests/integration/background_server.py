"""Run a server on its own event loop in a daemon thread, for callers that are not async
themselves: the benchmark and the end-to-end tests drive it with the blocking client.

    with BackgroundServer(settings) as running:
        StemserveClient(f"localhost:{running.port}").separate(...)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, Self

from stemserve.core.settings import Settings
from stemserve.server.app import StemServer, create_server
from stemserve.server.metrics import ServiceMetrics
from stemserve.server.models import ModelPool


class BackgroundServer:
    def __init__(self, settings: Settings, *, pool: ModelPool | None = None,
                 metrics: ServiceMetrics | None = None, warm: bool = True, grace_s: float = 1.0) -> None:
        self.settings, self.warm, self.grace_s = settings, warm, grace_s
        self.metrics = ServiceMetrics() if metrics is None else metrics
        self._pool = pool
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="stemserve-server", daemon=True)
        self.server: StemServer | None = None
        self.port = 0
        self._stopped = False

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout_s: float | None = 60.0) -> Any:
        """Run ``coroutine`` on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)

    def start(self) -> BackgroundServer:
        self._thread.start()

        async def build() -> tuple[StemServer, int]:
            server, port = create_server(self.settings, pool=self._pool, metrics=self.metrics)
            await server.start()
            if self.warm:
                await server.warm_up()
            return server, port

        self.server, self.port = self.run(build())
        return self

    def stop(self, grace_s: float | None = None) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.server is not None:
            self.run(self.server.stop(self.grace_s if grace_s is None else grace_s))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
