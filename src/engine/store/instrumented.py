"""Storage metrics without touching the backends: a proxy that times every coroutine
method of a store and counts its failures (`store_operation_duration_seconds`,
`store_errors_total`), applied to both tiers by `create_app`.

The proxy is transparent: it forwards every attribute, and wraps a coroutine method the
first time it is looked up (then caches the wrapper on itself), so methods a backend adds
later are measured too. `AlreadyExists` is an answer, not a failure, and is not counted.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

from engine.metrics import Metrics
from engine.store.protocols import AlreadyExists, StoreUnavailable


class InstrumentedStore:
    """Wraps a durable or ephemeral store; `store` ("durable"/"ephemeral") labels it."""

    def __init__(self, inner: Any, store: str, metrics: Metrics) -> None:
        self._inner = inner
        self._store = store
        self._metrics = metrics

    @property
    def inner(self) -> Any:
        """The backend itself (for tests and tooling that need its type)."""
        return self._inner

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name.startswith("_") or not inspect.iscoroutinefunction(attribute):
            return attribute
        wrapped = self._timed(name, attribute)
        setattr(self, name, wrapped)  # later look-ups find it without __getattr__
        return wrapped

    def _timed(self, operation: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        observe, store = self._metrics.observe_store, self._store

        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = perf_counter()
            error: str | None = None
            try:
                return await method(*args, **kwargs)
            except AlreadyExists:
                raise
            except StoreUnavailable:
                error = "unavailable"
                raise
            except Exception:
                error = "error"
                raise
            finally:
                observe(store, operation, perf_counter() - started, error)

        timed.__name__ = operation
        timed.__doc__ = method.__doc__
        return timed

    def __repr__(self) -> str:
        return f"InstrumentedStore({self._inner!r})"


def instrument(store: Any, kind: str, metrics: Metrics) -> Any:
    """`store`, measured. Typed `Any` so callers keep the store's own Protocol type."""
    return InstrumentedStore(store, kind, metrics)
