"""A real Redis Cluster on loopback (three masters, no replicas) for tests and benchmarks.

``redis-server --cluster-enabled yes`` three times, then ``redis-cli --cluster
create ... --cluster-yes`` to share the 16,384 slots between them; returns once
every node says ``cluster_state:ok``. Like :mod:`shenava.redis_server`, call it
before the reactor runs.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from shenava.redis_server import (
    RedisServer,
    RedisServerError,
    find_redis_server,
    free_port,
    start_redis_server,
)

__all__ = ["RedisClusterServers", "start_redis_cluster"]

READY_TIMEOUT_S = 30.0


class RedisClusterServers:
    """The cluster's nodes; ``stop()`` stops them all."""

    def __init__(self, nodes: list[RedisServer]) -> None:
        self.nodes = nodes

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{n.host}:{n.port}" for n in self.nodes)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [(n.host, n.port) for n in self.nodes]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> RedisClusterServers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_redis_cluster(folder: Path, *, masters: int = 3, timeout_s: float = READY_TIMEOUT_S) -> RedisClusterServers:
    """Start ``masters`` cluster-enabled redis-servers in ``folder``/n<i> and join them."""
    cli = find_redis_server("redis-cli")
    nodes: list[RedisServer] = []
    try:
        for i in range(masters):
            node_dir = folder / f"n{i}"
            nodes.append(start_redis_server(
                node_dir,
                extra_args=("--cluster-enabled", "yes", "--cluster-config-file", str(node_dir / "nodes.conf"),
                            "--cluster-node-timeout", "2000", "--cluster-port", str(free_port())),
            ))
        created = subprocess.run(
            [cli, "--cluster", "create", *(f"{n.host}:{n.port}" for n in nodes), "--cluster-yes"],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s, check=False,
        )
        if created.returncode != 0:
            raise RedisServerError(f"redis-cli --cluster create failed: {created.stdout[-500:]!r}")
        _wait_ok(cli, nodes, timeout_s)
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return RedisClusterServers(nodes)


def _wait_ok(cli: str, nodes: list[RedisServer], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        states = [
            subprocess.run([cli, "-p", str(n.port), "cluster", "info"], capture_output=True, timeout=5,
                           check=False).stdout
            for n in nodes
        ]
        if all(b"cluster_state:ok" in s for s in states):
            return
        time.sleep(0.1)
    raise RedisServerError(f"the cluster did not reach cluster_state:ok within {timeout_s:g} s")


def cluster_available() -> bool:
    """Both programs a cluster needs are installed."""
    return shutil.which("redis-server") is not None and shutil.which("redis-cli") is not None
