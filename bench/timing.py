"""Stage timers for the benchmarks: wrap a product function so its seconds add up under a label."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any


def timed(acc: dict[str, float], label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, adding the seconds of every call to ``acc[label]``."""

    def wrapper(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            acc[label] += time.perf_counter() - t

    return wrapper


def timed_gen(
    acc: dict[str, float], label: str, fn: Callable[..., Iterator[Any]]
) -> Callable[..., Iterator[Any]]:
    """Generator ``fn``, adding the seconds spent producing each item to ``acc[label]``."""

    def wrapper(*a: Any, **k: Any) -> Iterator[Any]:
        it = fn(*a, **k)
        while True:
            t = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                acc[label] += time.perf_counter() - t
                return
            acc[label] += time.perf_counter() - t
            yield item

    return wrapper
