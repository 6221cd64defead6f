"""The leader's Redis gate (:func:`shenava.leader.guard_redis`) for a Redis Cluster client.

A ``RedisCluster`` has no single connection pool to gate (each node has its
own, made as the slot map changes), so the gate sits where every command
starts: ``execute_command`` (commands and scripts) and each pipeline's
``watch`` and ``execute``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["guard_cluster"]


def guard_cluster(client: Any, allowed: Callable[[], bool], refuse: Callable[[], Exception]) -> None:
    """Make ``client`` raise ``refuse()`` for every command while ``allowed()`` is false."""

    def check() -> None:
        if not allowed():
            raise refuse()

    execute = client.execute_command

    async def gated_execute(*args: Any, **kwargs: Any) -> Any:
        check()
        return await execute(*args, **kwargs)

    client.execute_command = gated_execute
    make_pipeline = client.pipeline

    def gated_pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = make_pipeline(*args, **kwargs)
        for name in ("execute", "watch"):
            _gate(pipe, name, check)
        return pipe

    client.pipeline = gated_pipeline


def _gate(pipe: Any, name: str, check: Callable[[], None]) -> None:
    original = getattr(pipe, name)

    async def gated(*args: Any, **kwargs: Any) -> Any:
        check()
        return await original(*args, **kwargs)

    setattr(pipe, name, gated)
