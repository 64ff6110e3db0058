"""Build, start, warm and stop the gRPC server.

``create_server`` is the factory (tests bind port 0); ``serve`` is what ``stemserve serve``
runs: metrics endpoint, server, warm-up, then wait for SIGTERM/SIGINT and shut down
gracefully, letting requests in flight finish within the grace period.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from stemserve.client.proto_gen import separation_pb2, separation_pb2_grpc
from stemserve.core.errors import InvalidOptionError
from stemserve.core.settings import Settings
from stemserve.pipeline.options import DEFAULT_MODEL
from stemserve.preprocess.decode import DecodeLimits
from stemserve.server.auth import ApiKeys
from stemserve.server.cache import ResultCache
from stemserve.server.interceptors import MetricsInterceptor
from stemserve.server.limits import ConcurrencyLimits
from stemserve.server.metrics import ServiceMetrics, start_metrics_server
from stemserve.server.models import ModelPool
from stemserve.server.service import SeparationService

log = logging.getLogger(__name__)

SERVICE_NAME = separation_pb2.DESCRIPTOR.services_by_name["Separation"].full_name
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
READINESS_POLL_S = 2.0  # how often a remote backend's readiness is checked while serving


@dataclass(frozen=True)
class ServerParts:
    """What a server's other services share with the separation service (its extensions)."""

    pool: ModelPool
    keys: ApiKeys
    metrics: ServiceMetrics
    default_model: str
    limits: ConcurrencyLimits


# adds services to the server (the Jobs service: ``stemserve.jobs``); returns their full names
Extension = Callable[[grpc.aio.Server, ServerParts], Sequence[str]]


class StemServer:
    """The grpc.aio server with what it needs to become ready and to stop cleanly."""

    def __init__(self, server: grpc.aio.Server, health_servicer, pool: ModelPool,
                 executor: ThreadPoolExecutor, metrics: ServiceMetrics, services: Sequence[str] = (SERVICE_NAME,)) -> None:
        self.grpc_server, self.health, self.pool = server, health_servicer, pool
        self.executor, self.metrics = executor, metrics
        self.services = tuple(services)
        self._readiness: asyncio.Task | None = None

    async def start(self) -> None:
        """Accept calls; health says NOT_SERVING until :meth:`warm_up` has run."""
        await self._set_health(NOT_SERVING)
        await self.grpc_server.start()

    async def warm_up(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self.executor, self.pool.load_and_warm)
        await self._set_health(SERVING)
        log.info("serving models %s", self.pool.names)
        if self.pool.checks_readiness:
            self._readiness = asyncio.create_task(self._follow_readiness())

    async def _follow_readiness(self) -> None:
        """Health follows a remote backend's readiness (Triton restarting, unreachable...)."""
        loop = asyncio.get_running_loop()
        serving = True
        while True:
            await asyncio.sleep(READINESS_POLL_S)
            ready = await loop.run_in_executor(self.executor, self.pool.backends_ready)
            if ready != serving:
                serving = ready
                log.warning("backend %s: health turns %s", "ready" if ready else "not ready",
                            "SERVING" if ready else "NOT_SERVING")
                await self._set_health(SERVING if ready else NOT_SERVING)

    async def _set_health(self, status: int) -> None:
        for service in ("", *self.services):
            await self.health.set(service, status)

    async def stop(self, grace_s: float | None) -> None:
        """Refuse new calls, give those in flight ``grace_s`` seconds, then cancel them."""
        if self._readiness is not None:
            self._readiness.cancel()
        await self.health.enter_graceful_shutdown()
        await self.grpc_server.stop(grace_s)
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.pool.close()

    async def wait_for_termination(self) -> None:
        await self.grpc_server.wait_for_termination()


def create_server(settings: Settings, *, pool: ModelPool | None = None, metrics: ServiceMetrics | None = None,
                  extensions: Sequence[Extension] = ()) -> tuple[StemServer, int]:
    """A server bound to ``settings.host:settings.port`` (0: a free port), not started;
    ``extensions`` add their services beside the separation service."""
    metrics = ServiceMetrics() if metrics is None else metrics
    if pool is None:
        pool = ModelPool.from_settings(settings, metrics)
    keys = ApiKeys.load(settings.api_keys_file) if settings.api_keys_file else ApiKeys.disabled()
    executor = ThreadPoolExecutor(max_workers=settings.max_songs_in_flight + 1, thread_name_prefix="separate")
    default_model = DEFAULT_MODEL if DEFAULT_MODEL in pool.names else pool.names[0]
    cache = ResultCache(settings.cache_dir, settings.cache_max_bytes)
    metrics.cache_size.set(cache.size_bytes)
    limits = ConcurrencyLimits(max_in_flight=settings.max_songs_in_flight, max_per_key=settings.max_songs_per_key)
    service = SeparationService(
        pool=pool,
        cache=cache,
        limits=limits,
        keys=keys,
        metrics=metrics,
        decode_limits=DecodeLimits(max_bytes=settings.max_upload_bytes, max_duration_s=settings.max_duration_s),
        executor=executor,
        default_model=default_model,
    )
    # no SO_REUSEPORT: a second server on a port in use must fail, not share it silently
    server = grpc.aio.server(interceptors=[MetricsInterceptor(metrics)], options=[("grpc.so_reuseport", 0)])
    separation_pb2_grpc.add_SeparationServicer_to_server(service, server)
    services = [SERVICE_NAME]
    parts = ServerParts(pool=pool, keys=keys, metrics=metrics, default_model=default_model, limits=limits)
    for extension in extensions:
        services += extension(server, parts)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*services, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    try:
        port = _bind(server, settings)
    except InvalidOptionError:
        executor.shutdown(wait=False)
        raise
    return StemServer(server, health_servicer, pool, executor, metrics, services), port


def _bind(server: grpc.aio.Server, settings: Settings) -> int:
    """Listen on ``settings.host:settings.port``, with TLS when a certificate is set."""
    address = f"{settings.host}:{settings.port}"
    credentials = None
    if settings.tls_cert is not None and settings.tls_key is not None:
        try:
            pair = (settings.tls_key.read_bytes(), settings.tls_cert.read_bytes())
        except OSError as exc:
            raise InvalidOptionError(f"tls_key and tls_cert must be readable PEM files ({exc})") from exc
        credentials = grpc.ssl_server_credentials([pair])
    try:
        port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    except RuntimeError:
        port = 0
    if port == 0:
        raise InvalidOptionError(f"expected to bind {address}, got no port (in use or not an address)")
    return port


async def serve(settings: Settings, *, metrics: ServiceMetrics | None = None, extensions: Sequence[Extension] = (),
                on_ready: Callable[[StemServer], Awaitable[None]] | None = None,
                on_stop: Callable[[], Awaitable[None]] | None = None,
                stopping: asyncio.Event | None = None) -> None:
    """Run until SIGTERM or SIGINT (or ``stopping`` is set), then shut down gracefully.
    ``on_ready`` runs once the models are warm, ``on_stop`` when the signal came, before the
    server stops."""
    metrics = ServiceMetrics() if metrics is None else metrics
    httpd, metrics_port = start_metrics_server(settings.metrics_port, metrics.registry)
    server, port = create_server(settings, metrics=metrics, extensions=extensions)
    await server.start()
    log.info("listening on %s:%d (%s), metrics on port %d", settings.host, port,
             "TLS" if settings.tls_cert else "plaintext", metrics_port)
    stopping = asyncio.Event() if stopping is None else stopping
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await server.warm_up()
    if on_ready is not None:
        await on_ready(server)
    await stopping.wait()
    log.info("shutting down; requests in flight get %.0f s", settings.shutdown_grace_s)
    if on_stop is not None:
        await on_stop()
    await server.stop(settings.shutdown_grace_s)
    httpd.shutdown()
