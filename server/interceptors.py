"""Server interceptor: every RPC's latency and final status code, measured in one place."""

from __future__ import annotations

import asyncio
import inspect
import time

import grpc
from stemserve.server.metrics import ServiceMetrics


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        rpc = handler_call_details.method.lstrip("/")  # registered methods only: bounded
        if handler.unary_unary and inspect.iscoroutinefunction(handler.unary_unary):
            return grpc.unary_unary_rpc_method_handler(
                self._unary(rpc, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        for kind in ("unary_stream", "stream_stream"):
            behavior = getattr(handler, kind)
            if behavior and inspect.isasyncgenfunction(behavior):
                make = getattr(grpc, f"{kind}_rpc_method_handler")
                return make(
                    self._streaming(rpc, behavior),
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
        return handler

    def _unary(self, rpc: str, behavior):
        async def timed(request, context):
            started = time.perf_counter()
            code = grpc.StatusCode.UNKNOWN
            try:
                response = await behavior(request, context)
                code = _code(context, grpc.StatusCode.OK)
                return response
            except BaseException as exc:
                code = _failure_code(context, exc)
                raise
            finally:
                self._observe(rpc, code, time.perf_counter() - started)

        return timed

    def _streaming(self, rpc: str, behavior):
        async def timed(request_or_iterator, context):
            started = time.perf_counter()
            code = grpc.StatusCode.UNKNOWN
            try:
                async for response in behavior(request_or_iterator, context):
                    yield response
                code = _code(context, grpc.StatusCode.OK)
            except BaseException as exc:
                code = _failure_code(context, exc)
                raise
            finally:
                self._observe(rpc, code, time.perf_counter() - started)

        return timed

    def _observe(self, rpc: str, code: grpc.StatusCode, seconds: float) -> None:
        self.metrics.requests.labels(rpc=rpc, code=code.name).inc()
        self.metrics.request_duration.labels(rpc=rpc).observe(seconds)


def _code(context: grpc.aio.ServicerContext, default: grpc.StatusCode) -> grpc.StatusCode:
    code = context.code()
    if code is None:
        return default
    if isinstance(code, grpc.StatusCode):
        return code
    return next((c for c in grpc.StatusCode if c.value[0] == code), default)


def _failure_code(context: grpc.aio.ServicerContext, exc: BaseException) -> grpc.StatusCode:
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
        remaining = context.time_remaining()
        expired = remaining is not None and remaining <= 0
        return grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
    return _code(context, grpc.StatusCode.UNKNOWN)
