"""The transcript follower's ``XREAD`` on a Redis Cluster: no ``COMMAND GETKEYS`` before it.

redis-py cannot find ``XREAD``'s keys (they follow ``STREAMS``) from the key
specs it reads, so its cluster client asked the server (``COMMAND GETKEYS``)
before every ``XREAD``: the follower's poll, once a second per daemon, cost two
commands. The store sends it to the stream's node from the client's slot map.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest_twisted
import redis

from recordings.store import RecordingFolder, VoicemailStore
from shenava.redis_cluster_server import RedisClusterServers
from shenava_base.aio import as_deferred


def _commands(cluster: RedisClusterServers) -> dict[str, int]:
    out: dict[str, int] = {}
    for host, port in cluster.addresses:
        with redis.Redis(host=host, port=port, socket_timeout=5) as node:
            for k, v in node.info("commandstats").items():
                name = k.removeprefix("cmdstat_")
                out[name] = out.get(name, 0) + int(v["calls"])
    return out


@pytest_twisted.ensureDeferred
async def test_following_the_transcribed_stream_sends_xread_alone(
    cluster_client: Any, redis_cluster: RedisClusterServers, tmp_path: Path
) -> None:
    store = VoicemailStore(cluster_client, RecordingFolder(tmp_path), site="north")
    await as_deferred(store.transcribed_after("0-0"))  # the client learns the cluster first
    first = await as_deferred(cluster_client.xadd(store.keys.transcribed, {"vm": "vm-1", "at": "1.0"}))
    before = _commands(redis_cluster)
    events = await as_deferred(store.transcribed_after("0-0"))
    for _ in range(4):
        assert await as_deferred(store.transcribed_after(first.decode())) == []
    after = _commands(redis_cluster)
    spent = {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}
    spent.pop("info", None)
    spent.pop("hello", None)  # our own connections to each node
    assert spent == {"xread": 5}  # before: and "command|getkeys": 5
    assert [(e.entry_id, e.vm_id) for e in events] == [(first.decode(), "vm-1")]
