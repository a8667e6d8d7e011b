"""Run async application code from synchronous Celery tasks (seed 000's ``run_async``).

Takes a *factory*, not a coroutine, so every call builds its coroutine -- and the
clients inside it -- on the loop that will run it. That is what keeps seed 003's
``RuntimeError: Event loop is closed`` away: nothing async outlives the loop it
was created on, and no loop is inherited across ``fork()``.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_async(coro_factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``coro_factory()`` to completion and return its result.

    * No running loop (a prefork child, the normal case): ``asyncio.run`` -- a fresh loop,
      closed afterwards with its async generators and default executor shut down.
    * A loop is already running in this thread (eager mode inside an async caller, a
      notebook): blocking it would deadlock, so the coroutine runs on a dedicated thread
      with its own loop, with the caller's context variables copied over.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro_factory())

    context = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="run_async") as pool:
        return pool.submit(context.run, lambda: asyncio.run(coro_factory())).result()
